"""The autotuner's persistent choices: one JSON file per device under the tilevm cache directory
(``$TILEVM_CACHE_DIR/autotune/<device>.json``, see ``tilevm.runtime.cuda.cache.default_directory``).

The file maps a key (canonical JSON text of the op's name, tilevm's version and what the caller passed:
shapes, dtypes, ...) to the chosen config and its time. A store reads the file, adds its entry and writes
the whole file to a temporary file that is flushed and renamed over the old one (``os.replace`` is atomic),
under an exclusive lock on a side file: readers see the old file or the new one, never a mix, and two
processes storing at once keep both entries. A file that does not parse is ignored with a warning, and the
next store rewrites it.

>>> import tempfile
>>> cache = AutotuneCache("NVIDIA H100 80GB HBM3", tempfile.mkdtemp())
>>> cache.path.name
'nvidia-h100-80gb-hbm3.json'
>>> cache.lookup('{"m": 1}') is None
True
>>> cache.store('{"m": 1}', {"block_n": 128}, 12.5)
>>> AutotuneCache("NVIDIA H100 80GB HBM3", cache.path.parent.parent).lookup('{"m": 1}')
{'block_n': 128}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from tilevm.runtime.cuda.cache import default_directory

__all__ = ["FILE_FORMAT", "AutotuneCache", "AutotuneWarning"]

#: the version of the file's layout; a file of another layout is ignored (and rewritten by the next store)
FILE_FORMAT = 1


class AutotuneWarning(UserWarning):
    """A damaged cache file, or candidates that failed to compile or launch during a search."""


class AutotuneCache:
    """The choices made on one device (named by ``device_name``), kept in ``directory/autotune``
    (``directory`` defaults to the tilevm cache directory)."""

    def __init__(self, device_name: str, directory: str | os.PathLike[str] | None = None) -> None:
        root = Path(directory) if directory is not None else default_directory()
        slug = re.sub(r"[^0-9a-z]+", "-", device_name.lower()).strip("-") or "device"
        self.device_name = device_name
        self.path = root / "autotune" / f"{slug}.json"
        self._entries: dict[str, dict] | None = None  # the file's entries, read on the first lookup

    def lookup(self, key: str) -> dict | None:
        """The config stored under ``key`` (as JSON gives it back: a dict), or None."""
        if self._entries is None:
            self._entries = self._read()
        entry = self._entries.get(key)
        return entry["config"] if entry is not None else None

    def store(self, key: str, config: dict, time_us: float) -> None:
        """Record ``config`` (JSON-representable) and its time under ``key``, merged with the entries other
        processes stored meanwhile; a directory that cannot be written is a warning, not an error."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                entries = self._read()
                entries[key] = {"config": config, "time_us": time_us}
                document = {"format": FILE_FORMAT, "device": self.device_name, "entries": entries}
                self._write(json.dumps(document, indent=1, sort_keys=True))
        except OSError as error:
            warnings.warn(
                f"tilevm autotune: cannot write {self.path} ({error})", AutotuneWarning, stacklevel=2
            )
            return
        self._entries = entries

    def _read(self) -> dict[str, dict]:
        try:
            text = self.path.read_text()
        except OSError:
            return {}
        try:
            document = json.loads(text)
            entries = document["entries"] if document["format"] == FILE_FORMAT else None
            valid = isinstance(entries, dict) and all(
                isinstance(entry, dict) and isinstance(entry.get("config"), dict)
                for entry in entries.values()
            )
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            warnings.warn(
                f"tilevm autotune: {self.path} is damaged or of another format; ignored, and rewritten by "
                "the next search",
                AutotuneWarning,
                stacklevel=3,
            )
            return {}
        return entries

    def _write(self, text: str) -> None:
        descriptor, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on ``<file>.lock`` for a read-merge-write (where ``fcntl`` exists; elsewhere the
        write is still atomic, and a concurrent store may lose the other process's entry)."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            yield
            return
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

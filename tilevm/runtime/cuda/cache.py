"""The disk cache of compiled kernels: ``~/.cache/tilevm``, or the directory ``TILEVM_CACHE_DIR`` names.

Each entry is one file named by its key (``cache_key``: a sha256 of everything the compiled code depends on,
which the caller chooses). A file holds a header (magic, payload length, sha256 of the payload) and the
payload, so a damaged or truncated entry is detected, removed and reported as a miss. Writes go to a
temporary file in the same directory, then are renamed over the entry (``os.replace`` is atomic): a reader
sees the old entry or the new one, never a mix, and processes writing the same key at once leave one of
their complete entries. They are not forced to the disk (``fsync``, several milliseconds each, three on a
kernel's first launch): after a crash of the machine an entry may be empty or torn, which its checksum
shows, and it is compiled again. A directory that cannot be written turns caching off with a warning;
the kernel still compiles and runs.

``store_kernel``/``load_kernel`` keep a ``CompiledPtx`` (its fields as JSON) and an optional cubin.

>>> import tempfile
>>> cache = DiskCache(tempfile.mkdtemp())
>>> key = cache_key("program text", "sm_90")
>>> cache.get(key) is None
True
>>> cache.put(key, b"payload")
>>> cache.get(key)
b'payload'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import struct
import tempfile
import warnings
from pathlib import Path

from tilevm.codegen import CompiledPtx

__all__ = [
    "CACHE_VARIABLE",
    "HEADER",
    "MAGIC",
    "CacheWarning",
    "DiskCache",
    "cache_key",
    "default_directory",
]

#: the environment variable that moves the cache
CACHE_VARIABLE = "TILEVM_CACHE_DIR"
#: the first bytes of every entry; a new layout gets a new magic, so old entries read as misses
MAGIC = b"TILEVMC1"
#: an entry's header: the magic, the payload's length and the payload's sha256
HEADER = struct.Struct("<8sQ32s")
#: the first bytes of a kernel entry's payload: the length of its JSON part (the cubin follows it)
_KERNEL_HEADER = struct.Struct("<Q")
_KEY = re.compile(r"[0-9A-Za-z_-]{1,128}")


class CacheWarning(UserWarning):
    """The disk cache cannot be written, or found a damaged entry."""


def default_directory() -> Path:
    """``$TILEVM_CACHE_DIR`` when set, else ``~/.cache/tilevm``."""
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured) if configured else Path.home() / ".cache" / "tilevm"


def cache_key(*parts: str | bytes) -> str:
    """The sha256 (hex) of ``parts``, each length-prefixed so that no two different lists of parts collide
    by concatenation (``("ab", "c")`` and ``("a", "bc")`` give different keys)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


class DiskCache:
    """Entries of bytes by key in ``directory`` (``default_directory()`` when None)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        #: False once a write failed: the cache then only reads
        self.writable = True

    def path(self, key: str) -> Path:
        """The file of entry ``key`` (keys are file-name safe: letters, digits, ``_`` and ``-``)."""
        if not _KEY.fullmatch(key):
            raise ValueError(f"cache key {key!r} is not 1 to 128 letters, digits, '_' or '-'")
        return self.directory / f"{key}.tvc"

    def get(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (no entry, an unreadable one, or a damaged one, which is
        removed)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        payload = _payload(data)
        if payload is None:
            warnings.warn(f"tilevm cache: damaged entry {path} removed", CacheWarning, stacklevel=2)
            with contextlib.suppress(OSError):
                path.unlink()
        return payload

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically; on a directory that cannot be written, warn once and stop
        writing."""
        path = self.path(key)
        if not self.writable:
            return
        entry = HEADER.pack(MAGIC, len(data), hashlib.sha256(data).digest()) + data
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, entry)
        except OSError as error:
            self.writable = False
            warnings.warn(
                f"tilevm cache: cannot write to {self.directory} ({error}); kernels will not be cached",
                CacheWarning,
                stacklevel=2,
            )

    def store_kernel(self, key: str, compiled: CompiledPtx, cubin: bytes | None = None) -> None:
        """Store a ``CompiledPtx`` (every field) and, optionally, its cubin under ``key``."""
        fields = {field.name: getattr(compiled, field.name) for field in dataclasses.fields(compiled)}
        text = json.dumps({"fields": fields, "cubin": cubin is not None}, sort_keys=True).encode()
        self.put(key, _KERNEL_HEADER.pack(len(text)) + text + (cubin or b""))

    def load_kernel(self, key: str) -> tuple[CompiledPtx, bytes | None] | None:
        """The ``(CompiledPtx, cubin or None)`` stored under ``key``, or None. An entry whose fields do not
        make a ``CompiledPtx`` of this tilevm (written by another version) is a miss."""
        payload = self.get(key)
        if payload is None:
            return None
        try:
            (length,) = _KERNEL_HEADER.unpack_from(payload)
            end = _KERNEL_HEADER.size + length
            record = json.loads(payload[_KERNEL_HEADER.size : end])
            fields = {name: _from_json(value) for name, value in record["fields"].items()}
            compiled = CompiledPtx(**fields)
        except (struct.error, ValueError, KeyError, TypeError, AttributeError):
            return None
        return compiled, (payload[end:] if record["cubin"] else None)


def _from_json(value: object) -> object:
    # JSON has no tuples; CompiledPtx's sequences are tuples (it is frozen and hashable)
    return tuple(_from_json(item) for item in value) if isinstance(value, list) else value


def _payload(data: bytes) -> bytes | None:
    """The payload of an entry's bytes, or None when the header or the checksum does not match."""
    if len(data) < HEADER.size:
        return None
    magic, length, digest = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    if magic != MAGIC or length != len(payload) or hashlib.sha256(payload).digest() != digest:
        return None
    return payload


def _write_atomically(path: Path, entry: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(entry)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise

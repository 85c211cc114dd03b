"""The autotuner: for one op, it chooses among candidate configs by timing each on the GPU, and remembers the
choice per key (shapes, dtypes, whatever the caller passes) in memory and in a per-device file.

How a choice is made for a key, the first time it is asked for in a process:

1. on a tensor that is not on a CUDA device, or with ``TILEVM_AUTOTUNE=0``: the caller's default;
2. the choice stored in the device's cache file for the same key and tilevm version, if it is still one of
   the candidates;
3. while a CUDA graph is being captured (a search would launch into the graph): the default, not
   remembered, so that the next call outside the capture searches;
4. a search: each candidate runs under the timer (``gpu_time_us``: median GPU time, L2 flushed); one that
   raises a compile or launch error is skipped and reported with an ``AutotuneWarning``; the fastest is
   stored.

Later calls with the same key cost one dict lookup.

>>> tuner = Autotuner("example", timer=lambda run: {"a": 2.0, "b": 1.0}[run()])
>>> tuner.search([("n", 8)], ["a", "b"], lambda config: config).best
'b'
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

import tilevm
from tilevm.autotune.cache import AutotuneCache, AutotuneWarning
from tilevm.autotune.progress import ProgressBar
from tilevm.autotune.timing import gpu_time_us
from tilevm.errors import TilevmError

__all__ = ["ENABLE_VARIABLE", "AutotuneError", "Autotuner", "Key", "SearchResult", "cuda_device_name"]

#: ``0`` turns searching off: every choice is the caller's default
ENABLE_VARIABLE = "TILEVM_AUTOTUNE"

Config = TypeVar("Config")
#: what identifies a problem: (name, value) pairs, or a mapping of them; values are JSON scalars or are
#: written with ``str`` (torch and tilevm dtypes)
Key = Mapping[str, object] | Sequence[tuple[str, object]]
#: the errors that skip a candidate: tilevm's compile and launch errors, and torch's CUDA errors (out of
#: memory, too many resources requested), which are RuntimeErrors
_CANDIDATE_ERRORS = (TilevmError, RuntimeError)


class AutotuneError(TilevmError):
    """Every candidate failed to compile or launch."""


@dataclass(frozen=True)
class SearchResult(Generic[Config]):
    """What a search found: the fastest config and its µs, each timed config with its µs, each failed one
    with its error."""

    best: Config
    best_us: float
    times_us: tuple[tuple[Config, float], ...]
    failures: tuple[tuple[Config, str], ...]


def cuda_device_name(device: torch.device) -> str:
    """The device's name and compute capability (``NVIDIA H100 80GB HBM3 sm_90``): what the cache file is
    named by."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"


class Autotuner(Generic[Config]):
    """The tuner of the op ``name``. ``timer(function) -> µs`` times one candidate (``gpu_time_us`` by
    default; tests pass a fake one); ``device_name`` names a device for its cache file; the cache files live
    under ``cache_directory`` (the tilevm cache directory by default)."""

    def __init__(
        self,
        name: str,
        *,
        timer: Callable[[Callable[[], object]], float] = gpu_time_us,
        device_name: Callable[[torch.device], str] = cuda_device_name,
        cache_directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.timer = timer
        self.device_name = device_name
        self.cache_directory = cache_directory
        self._chosen: dict[tuple[torch.device, tuple], object] = {}
        self._caches: dict[str, AutotuneCache] = {}
        #: counts ``forget`` calls: a caller that keeps a choice keeps it while this is unchanged
        self.generation = 0

    def choose(
        self,
        key: Key,
        candidates: Sequence[Config] | Callable[[], Sequence[Config]],
        run: Callable[[Config], object],
        default: Config | Callable[[], Config],
        device: torch.device,
    ) -> Config:
        """The config to use for ``key`` on ``device``: remembered, stored on disk, or searched for by
        calling ``run(config)`` for each of ``candidates`` (see the module's docstring for the order).

        ``candidates`` and ``default`` may be functions that return them, called only when a choice is
        made: a call that finds its choice remembered then costs one dict lookup (with a tuple ``key`` of
        hashable values; a mapping is sorted first)."""
        remembered = (device, key if isinstance(key, tuple) else tuple(sorted(key.items())))
        chosen = self._chosen.get(remembered)
        if chosen is not None:
            return chosen
        default = default() if callable(default) else default
        if device.type != "cuda" or os.environ.get(ENABLE_VARIABLE, "1") == "0":
            chosen = default
        else:
            candidates = candidates() if callable(candidates) else candidates
            chosen = self._stored_or_searched(_items(key), candidates, run, default, device)
            if chosen is None:  # capturing a graph: decide later
                return default
        self._chosen[remembered] = chosen
        return chosen

    def search(
        self, key: Key, candidates: Sequence[Config], run: Callable[[Config], object]
    ) -> SearchResult[Config]:
        """Time every candidate (``run(config)`` under the timer) with a progress bar; no cache is read or
        written. Raises ``AutotuneError`` when every candidate fails."""
        if not candidates:
            raise ValueError(f"autotune {self.name}: no candidates to search")
        items = _items(key)
        label = " ".join([f"tilevm autotune {self.name}", *(f"{name}={value}" for name, value in items)])
        bar = ProgressBar(label, len(candidates))
        times: list[tuple[Config, float]] = []
        failures: list[tuple[Config, str]] = []
        bar.update(0)
        for done, config in enumerate(candidates, 1):
            try:
                times.append((config, self.timer(lambda config=config: run(config))))
            except _CANDIDATE_ERRORS as error:
                failures.append((config, f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"))
            best = min(times, key=lambda pair: pair[1], default=None)
            bar.update(done, f"best {best[1]:.1f} µs" if best else "")
        bar.close()
        listed = "; ".join(f"{config}: {message}" for config, message in failures)
        if failures:
            warnings.warn(
                f"{label}: skipped {len(failures)} candidate(s): {listed}", AutotuneWarning, stacklevel=2
            )
        if not times:
            raise AutotuneError(f"{label}: every candidate failed: {listed}")
        best = min(times, key=lambda pair: pair[1])
        return SearchResult(best[0], best[1], tuple(times), tuple(failures))

    def forget(self) -> None:
        """Drop what this process remembers (choices and cache files read), e.g. after moving the cache."""
        self._chosen.clear()
        self._caches.clear()
        self.generation += 1

    def _stored_or_searched(
        self,
        items: tuple,
        candidates: Sequence[Config],
        run: Callable[[Config], object],
        default: Config,
        device: torch.device,
    ) -> Config | None:
        name = self.device_name(device)
        cache = self._caches.get(name)
        if cache is None:
            cache = self._caches[name] = AutotuneCache(name, self.cache_directory)
        text = json.dumps({"op": self.name, "tilevm": tilevm.__version__, "key": items}, sort_keys=True)
        stored = cache.lookup(text)
        by_json = {_canonical(config): config for config in candidates}
        if stored is not None and _canonical(stored) in by_json:
            return by_json[_canonical(stored)]
        cuda = torch.cuda.is_available()  # False where the timer is a test's fake
        if cuda and torch.cuda.is_current_stream_capturing():
            return None
        if len(candidates) <= 1:
            return candidates[0] if candidates else default
        with torch.cuda.device(device) if cuda else contextlib.nullcontext():
            result = self.search(items, candidates, run)
        cache.store(text, json.loads(_canonical(result.best)), result.best_us)
        return result.best


def _items(key: Key) -> tuple[tuple[str, object], ...]:
    """``key`` as a hashable tuple of (name, value) pairs, values made JSON scalars."""
    pairs = sorted(key.items()) if isinstance(key, Mapping) else key
    scalar = str | int | float | bool | None
    return tuple((name, value if isinstance(value, scalar) else str(value)) for name, value in pairs)


def _canonical(config: object) -> str:
    """A config (frozen dataclass or dict) as canonical JSON text, to compare with a stored one."""
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    if not isinstance(fields, Mapping):
        raise TypeError(f"an autotune config must be a dataclass or a dict, not {type(config).__name__}")
    return json.dumps(fields, sort_keys=True, default=str)

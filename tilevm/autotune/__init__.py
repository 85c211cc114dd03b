"""The autotuner: it chooses a kernel's config (tile sizes, pipeline depth, split-K, ...) per shape and
device by timing candidates on the GPU, shows a progress bar while it searches, and keeps its choices in a
per-device cache file.

- ``tuner``: ``Autotuner`` (``choose`` for a key, ``search`` to time candidates), ``SearchResult``.
- ``timing``: ``gpu_time_us``, the default timer (CUDA events, median, L2 flushed).
- ``cache``: ``AutotuneCache``, the per-device JSON file.
- ``progress``: ``ProgressBar``.

Variables: ``TILEVM_AUTOTUNE=0`` (no search: defaults), ``TILEVM_AUTOTUNE_QUIET=1`` (no bar),
``TILEVM_CACHE_DIR`` (where the files are, under ``autotune/``).
"""

from tilevm.autotune.cache import AutotuneCache, AutotuneWarning
from tilevm.autotune.progress import QUIET_VARIABLE, ProgressBar, bar_text
from tilevm.autotune.timing import gpu_time_us
from tilevm.autotune.tuner import ENABLE_VARIABLE, AutotuneError, Autotuner, SearchResult, cuda_device_name

__all__ = [
    "ENABLE_VARIABLE",
    "QUIET_VARIABLE",
    "AutotuneCache",
    "AutotuneError",
    "AutotuneWarning",
    "Autotuner",
    "ProgressBar",
    "SearchResult",
    "bar_text",
    "cuda_device_name",
    "gpu_time_us",
]

"""tilevm: a compiler and virtual machine for GPU kernels on data of any bit width from 1 to 8.

The launcher (``tv.kernel``, ``tv.Kernel``, and ``tv.view`` and ``tv.TensorArgument`` for torch tensors) is
imported on first use, with torch: the compiler's layers (dtypes, layouts, the IR, the DSL) import without it.

>>> import tilevm as tv
>>> tv.dtype("f6e3m2") is tv.float6_e3m2
True
"""

import importlib

from tilevm import dtypes, lang
from tilevm.dtypes import *  # noqa: F403  (the data types are the package's vocabulary; dtypes.__all__ lists them)
from tilevm.errors import CompilationError, CudaError, LaunchError, SourceLocation, TilevmError
from tilevm.lang import *  # noqa: F403  (the DSL; lang.__all__ lists it)

__version__ = "0.1.0"

#: public names of the runtime, imported when first asked for -> the module that defines each
_RUNTIME_NAMES = {
    "Kernel": "tilevm.runtime.jit",
    "kernel": "tilevm.runtime.jit",
    "TensorArgument": "tilevm.runtime.binding",
    "view": "tilevm.runtime.binding",
}

__all__ = [
    "CompilationError",
    "CudaError",
    "LaunchError",
    "SourceLocation",
    "TilevmError",
    "__version__",
    "dtypes",
    *_RUNTIME_NAMES,
    *dtypes.__all__,
    *lang.__all__,
]


def __getattr__(name: str) -> object:
    if name not in _RUNTIME_NAMES:
        raise AttributeError(f"module 'tilevm' has no attribute '{name}'")
    value = getattr(importlib.import_module(_RUNTIME_NAMES[name]), name)
    globals()[name] = value  # later look-ups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_RUNTIME_NAMES})

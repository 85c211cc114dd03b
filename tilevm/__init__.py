"""tilevm: a compiler and virtual machine for GPU kernels on data of any bit width from 1 to 8.

>>> import tilevm as tv
>>> tv.dtype("f6e3m2") is tv.float6_e3m2
True
"""

from tilevm import dtypes, lang
from tilevm.dtypes import *  # noqa: F403  (the data types are the package's vocabulary; dtypes.__all__ lists them)
from tilevm.errors import CompilationError, LaunchError, SourceLocation, TilevmError
from tilevm.lang import *  # noqa: F403  (the DSL; lang.__all__ lists it)
from tilevm.runtime.jit import Kernel, kernel

__version__ = "0.1.0"

__all__ = [
    "CompilationError",
    "Kernel",
    "LaunchError",
    "SourceLocation",
    "TilevmError",
    "__version__",
    "dtypes",
    "kernel",
    *dtypes.__all__,
    *lang.__all__,
]

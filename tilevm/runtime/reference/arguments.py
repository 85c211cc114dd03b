"""A launch's grid and flat arguments, checked the same way by both CPU executors (the block-level
reference executor and the SIMT interpreter).

>>> launch_grid((4, 2))
(4, 2, 1)
>>> from tilevm.dtypes import int8
>>> from tilevm.ir import ScalarType
>>> int(bind_argument("n", ScalarType(int8), 100))
100
"""

from __future__ import annotations

import numbers

import numpy as np

from tilevm.dtypes import DType
from tilevm.errors import LaunchError
from tilevm.ir import PointerType
from tilevm.ir.semantics import to_carrier
from tilevm.runtime.reference.global_memory import tensor_pointer

__all__ = ["MAX_GRID_RANK", "bind_argument", "launch_grid"]

MAX_GRID_RANK = 3


def launch_grid(grid: tuple[int, ...]) -> tuple[int, int, int]:
    """``grid`` (1 to 3 positive ints) padded with 1s to three axes."""
    extents = tuple(grid)
    if not 1 <= len(extents) <= MAX_GRID_RANK or any(
        not isinstance(extent, numbers.Integral) or extent < 1 for extent in extents
    ):
        raise LaunchError(f"a grid is 1 to 3 positive ints, got {grid!r}")
    padded = (*(int(extent) for extent in extents), 1, 1)
    return padded[0], padded[1], padded[2]


def bind_argument(name: str, param_type: object, value: object) -> object:
    """A parameter's value: a ``Pointer`` for a tensor, a 0-d carrier for a scalar, after checking it."""
    if isinstance(param_type, PointerType):
        return tensor_pointer(value, param_type.dtype, name)
    return _scalar(name, param_type.dtype, value)


def _scalar(name: str, dtype: DType, value: object) -> np.ndarray:
    """A scalar argument as a carrier, after checking it is a number that ``dtype`` holds."""
    if dtype.kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise LaunchError(f"argument {name} must be a bool, got {value!r}")
        return np.asarray(bool(value))
    if dtype.is_integer:
        if not isinstance(value, numbers.Integral) or not dtype.min_value <= value <= dtype.max_value:
            raise LaunchError(
                f"argument {name} must be an int in [{dtype.min_value}, {dtype.max_value}]"
                f" ({dtype}), got {value!r}"
            )
        return to_carrier(int(value), dtype)
    if not isinstance(value, numbers.Real):
        raise LaunchError(f"argument {name} must be a number ({dtype}), got {value!r}")
    return to_carrier(float(value), dtype)

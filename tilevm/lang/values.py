"""Turning the Python values a kernel mentions into IR expressions, and naming what a value is."""

from __future__ import annotations

import math

import numpy as np

from tilevm.dtypes import DType, boolean, float32, int32, round_to_dtype
from tilevm.errors import CompilationError
from tilevm.ir import Const, Expr, GlobalType, ScalarType, Scope, TileType

__all__ = [
    "constant",
    "describe_value",
    "from_numpy",
    "index_expr",
    "is_ir",
    "literal_like",
    "python_scalar",
]

PYTHON_SCALARS = (bool, int, float)
#: numpy scalars that stand for the Python int, float or bool they hold
NUMPY_NUMBERS = (np.integer, np.floating, np.bool_)


def is_ir(value: object) -> bool:
    return isinstance(value, Expr)


def python_scalar(value: object) -> bool:
    return isinstance(value, PYTHON_SCALARS)


def from_numpy(value: object) -> object:
    """A numpy number (``np.int64(8)``, ``np.float32(0.5)``, ``np.bool_(True)``) as the Python number it
    holds; any other value unchanged. Kernel arguments and the globals a kernel reads pass through here.

    >>> from_numpy(np.int64(8)), from_numpy(np.bool_(True)), from_numpy("text")
    (8, True, 'text')
    """
    return value.item() if isinstance(value, NUMPY_NUMBERS) else value


def default_dtype(value: bool | int | float) -> DType:
    if isinstance(value, bool):
        return boolean
    return int32 if isinstance(value, int) else float32


def constant(value: bool | int | float, dtype: DType | None = None) -> Const:
    """A Python number as a constant of ``dtype`` (its default dtype when None), if it is representable."""
    dtype = dtype or default_dtype(value)
    if dtype.kind == "bool":
        if not isinstance(value, bool):
            raise CompilationError(f"cannot use {describe_value(value)} as a bool; compare it instead")
        return Const(value, dtype)
    if dtype.is_float:
        if isinstance(value, bool):
            raise CompilationError(f"cannot use the bool {value} as a {dtype} value")
        as_float = float(value)
        rounded = as_float if math.isnan(as_float) else float(round_to_dtype(as_float, dtype))
        return Const(rounded, dtype)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CompilationError(f"cannot use {describe_value(value)} as a {dtype} value")
    if not dtype.min_value <= value <= dtype.max_value:
        raise CompilationError(f"{value} does not fit in {dtype} [{dtype.min_value}, {dtype.max_value}]")
    return Const(value, dtype)


def literal_like(value: object, other: Expr) -> Expr:
    """``value`` as an IR expression; a Python number takes the dtype of the IR operand beside it."""
    if is_ir(value):
        return value
    if not python_scalar(value):
        raise CompilationError(f"cannot use a {type(value).__name__} in kernel arithmetic")
    return constant(value, other.type.dtype)


def index_expr(value: object, what: str) -> Expr:
    """An integer scalar expression (an offset, a size): a Python int or an integer IR scalar."""
    if isinstance(value, int) and not isinstance(value, bool):
        return constant(value, int32)
    if is_ir(value) and isinstance(value.type, ScalarType) and value.type.dtype.is_integer:
        return value
    raise CompilationError(f"{what} must be an integer, got {describe_value(value)}")


def describe_value(value: object) -> str:
    """What ``value`` is, in words for an error message (never the repr of an IR object).

    >>> from tilevm.ir import Var
    >>> describe_value([4, Var("n", ScalarType(int32))])
    'a list of [the Python int 4, a runtime int32 scalar (known only at launch)]'
    """
    if isinstance(value, (list, tuple)) and any(is_ir(item) for item in value):
        kind = "list" if isinstance(value, list) else "tuple"
        return f"a {kind} of [{', '.join(describe_value(item) for item in value)}]"
    if not is_ir(value):
        return f"the Python {type(value).__name__} {value!r}"
    value_type = value.type
    if isinstance(value_type, TileType):
        scope = "register" if value_type.scope is Scope.REGISTER else "shared"
        return f"a {scope} tile {value_type.dtype}{list(value_type.shape)}"
    if isinstance(value_type, GlobalType):
        return f"a global {value_type.dtype} tensor of rank {value_type.rank}"
    if isinstance(value, Const):
        return f"the {value_type} constant {value.value}"
    return f"a runtime {value_type} scalar (known only at launch)"

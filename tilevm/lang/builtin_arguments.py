"""How the DSL's functions check their arguments and emit their instructions (shared by
``memory_builtins``, ``compute_builtins`` and ``math_builtins``).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from tilevm.dtypes import DType
from tilevm.errors import CompilationError
from tilevm.ir import Expr
from tilevm.lang.context import current
from tilevm.lang.values import describe_value, index_expr, is_ir
from tilevm.layout import RegisterLayout

__all__ = [
    "dtype_argument",
    "emit",
    "emit_output",
    "int_tuple",
    "is_int",
    "layout_argument",
    "offsets_argument",
    "shape_argument",
    "tile_dims",
    "tile_or_global",
]


def emit_output(builtin: str, kind: type, layout: RegisterLayout | None = None, **fields: object) -> Expr:
    context = current(builtin)
    return context.builder.emit_output(kind, context.name_hint, layout=layout, **fields)


def emit(builtin: str, instruction: object) -> None:
    current(builtin).builder.emit(instruction)


def shape_argument(shape: object, what: str) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(extent, int) and not isinstance(extent, bool) and extent > 0 for extent in shape
    ):
        raise CompilationError(
            f"{what} must be a list of positive compile-time ints (constexprs, not tensor sizes), "
            f"got {describe_value(shape)}"
        )
    return tuple(shape)


def offsets_argument(offsets: object, what: str = "offsets") -> tuple[Expr, ...]:
    if not isinstance(offsets, (tuple, list)):
        offsets = (offsets,)
    return tuple(index_expr(offset, f"{what}[{position}]") for position, offset in enumerate(offsets))


def tile_or_global(value: object, builtin: str, kinds: tuple[type, ...]) -> Expr:
    current(builtin)
    if not is_ir(value) or not isinstance(value.type, kinds):
        raise CompilationError(f"{builtin} cannot take {describe_value(value)}")
    return value


def tile_dims(dims: Sequence[int] | None, source_rank: int, tile_rank: int) -> tuple[int, ...]:
    if dims is None:
        return tuple(builtins.range(source_rank - tile_rank, source_rank))
    return int_tuple(dims, "dims")


def int_tuple(values: object, what: str) -> tuple[int, ...]:
    """``values`` as a tuple of compile-time ints (dims, say), or an error saying what they are instead."""
    if not isinstance(values, (tuple, list)) or not all(is_int(value) for value in values):
        raise CompilationError(f"{what} must be a list of compile-time ints, got {describe_value(values)}")
    return tuple(values)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dtype_argument(dtype: object, builtin: str) -> DType:
    if not isinstance(dtype, DType):
        raise CompilationError(
            f"{builtin} needs a tilevm dtype such as tv.float16, got {describe_value(dtype)}"
        )
    return dtype


def layout_argument(layout: object, builtin: str) -> RegisterLayout | None:
    if layout is not None and not isinstance(layout, RegisterLayout):
        raise CompilationError(f"{builtin}'s layout must be a register layout, got {describe_value(layout)}")
    return layout

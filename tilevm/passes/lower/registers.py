"""Lowering of the instructions that compute on register tiles without memory: unary, binary, where, arange,
permute and view (``convert_layout`` is in ``tilevm.passes.lower.convert_layout``).

Each thread computes on its own register (``tilevm.passes.lower.lowering``):

- an elementwise instruction is one vector expression (``%a + %b`` on two ``vector<float16, 8>`` is packed
  f16x2 arithmetic on the GPU). An operand of a smaller shape holds, by the broadcast layout rule, every
  element its thread reads, in fewer slots: a static ``gather`` puts them in the result's slots
  (``tilevm.passes.lower.local_maps``); a scalar operand is splat. A storage-only dtype (int4, float6_e3m2,
  ...) is widened to the machine dtype that computes the operation exactly
  (``tilevm.passes.lower.widening``) and narrowed back; ``where`` selects the values' codes, as unsigned
  integers of at least 8 bits, so that NaN payloads and -0.0 pass bit for bit;
- ``arange``: the thread's part of the coordinate (``Lowering.thread_coordinates``) plus each slot's
  compile-time part (``tilevm.passes.lower.coordinates``);
- ``permute`` keeps every element in its thread and slot (its layout rule), so it is the same register, or a
  static ``gather`` should the canonical layout order the slots otherwise;
- ``view`` keeps every thread's bits in place (its layout rule: both sides have the same ``bit_layout``, so
  bit ``k`` of a thread's register is the same bit of the tile on both sides): a ``bitcast``.
"""

from __future__ import annotations

from collections.abc import Callable

from tilevm.dtypes import DType, uint8
from tilevm.ir import Arange, Binary, Permute, TileType, Unary, View, Where
from tilevm.ir.expr import BinaryExpr, Const, Expr, UnaryExpr
from tilevm.ir.thread import Bitcast, Gather, Pack, Select
from tilevm.layout import RegisterLayout, bit_layout
from tilevm.passes.lower.casts import convert
from tilevm.passes.lower.coordinates import local_coordinates
from tilevm.passes.lower.local_maps import broadcast_map, is_identity, permute_map
from tilevm.passes.lower.lowering import (
    Handler,
    Lowering,
    LoweringError,
    register_type,
    splat,
    tile_layout,
    vector_length,
)
from tilevm.passes.lower.packed_gather import packed_gather
from tilevm.passes.lower.widening import arithmetic_dtype, code_dtype, is_machine

__all__ = ["HANDLERS", "as_codes", "byte_codes", "from_byte_codes", "from_codes", "gather", "reinterpret"]


def gather(register: Expr, indices: tuple[int, ...]) -> Expr:
    """The elements ``indices`` of ``register`` (a ``gather``), or ``register`` itself when that is all."""
    if is_identity(indices, vector_length(register.type)):
        return register
    return Gather((register,), indices)


def as_codes(lowering: Lowering, value: Expr) -> Expr:
    """``value`` as the unsigned integers of its codes, widened to 8 bits where they are narrower, so that
    a machine instruction moves them (a machine dtype stays as it is); ``from_codes`` undoes it."""
    return value if is_machine(value.type.dtype) else byte_codes(lowering, value)


def from_codes(lowering: Lowering, codes: Expr, dtype: DType) -> Expr:
    """The values of ``dtype`` whose codes ``as_codes`` gave."""
    return codes if is_machine(dtype) else from_byte_codes(lowering, codes, dtype)


def byte_codes(lowering: Lowering, value: Expr) -> Expr:
    """The codes of ``value``'s elements as unsigned integers of 8 bits or more (bool included)."""
    dtype = value.type.dtype
    codes = reinterpret(value, code_dtype(dtype))
    return convert(lowering, codes, uint8) if dtype.nbits < 8 else codes


def from_byte_codes(lowering: Lowering, codes: Expr, dtype: DType) -> Expr:
    """The values of ``dtype`` whose codes ``byte_codes`` gave."""
    return reinterpret(convert(lowering, codes, code_dtype(dtype)), dtype)


def reinterpret(value: Expr, dtype: DType) -> Expr:
    """``value``'s bits as elements of ``dtype`` of the same width (a ``bitcast`` where dtypes differ)."""
    if value.type.dtype == dtype:
        return value
    return Bitcast(dtype, vector_length(value.type), value)


def _operand(
    lowering: Lowering, operand: Expr, result: RegisterLayout, prepare: Callable[[Expr], Expr]
) -> Expr:
    """The operand's elements in the result's slots, each ``prepare``d (widened, say) before it is spread
    over the slots, where it has fewer elements."""
    if not isinstance(operand.type, TileType):
        return splat(prepare(operand), result.local_size)
    indices = broadcast_map(result, operand.type.shape)
    if indices is None:
        raise LoweringError(
            f"{tile_layout(operand)} does not hold, in each thread, what {result} reads of it",
            lowering.location,
        )
    return gather(prepare(lowering.tile(operand)), indices)


def _widening(lowering: Lowering, dtype: DType) -> Callable[[Expr], Expr]:
    def widen(value: Expr) -> Expr:
        if isinstance(value, Const):  # a constant of the operand's dtype is a value of every wider dtype
            return Const(value.value, dtype)
        return convert(lowering, value, dtype)

    return widen


def _compute(lowering: Lowering, instruction: Unary | Binary, expression: Expr) -> None:
    """Bind the instruction's result to ``expression`` (computed in a machine dtype), narrowed back."""
    output = instruction.output
    value = lowering.let(output.name, expression)
    lowering.bind(output, convert(lowering, value, output.type.dtype))


def _unary(lowering: Lowering, unary: Unary) -> None:
    result = tile_layout(unary.output)
    widen = _widening(lowering, arithmetic_dtype(unary.op, unary.output.type.dtype))
    operand = _operand(lowering, unary.operand, result, widen)
    _compute(lowering, unary, UnaryExpr(unary.op, operand))


def _binary(lowering: Lowering, binary: Binary) -> None:
    result = tile_layout(binary.output)
    widen = _widening(lowering, arithmetic_dtype(binary.op, binary.lhs.type.dtype))
    lhs = _operand(lowering, binary.lhs, result, widen)
    rhs = lhs if binary.rhs is binary.lhs else _operand(lowering, binary.rhs, result, widen)
    _compute(lowering, binary, BinaryExpr(binary.op, lhs, rhs))


def _where(lowering: Lowering, where: Where) -> None:
    result = tile_layout(where.output)
    condition = where.condition  # a scalar condition selects whole registers
    if isinstance(condition.type, TileType):
        condition = _operand(lowering, condition, result, lambda register: register)
    codes = (
        _operand(lowering, value, result, lambda v: as_codes(lowering, v))
        for value in (where.on_true, where.on_false)
    )
    selected = lowering.let(where.output.name, Select(condition, *codes))
    lowering.bind(
        where.output, lowering.let(where.output.name, from_codes(lowering, selected, where.output.type.dtype))
    )


def _arange(lowering: Lowering, arange: Arange) -> None:
    layout = tile_layout(arange.output)
    wide = arithmetic_dtype("add", arange.dtype)  # holds every index, as the arange's dtype does
    coordinate = convert(lowering, lowering.thread_coordinates(layout)[0], wide)
    offsets = [int(offset) for offset in local_coordinates(layout)[:, 0]]
    value = splat(coordinate, len(offsets))
    if len(offsets) > 1 and any(offsets):
        value = BinaryExpr("add", value, Pack(tuple(Const(offset, wide) for offset in offsets)))
    elif offsets[0]:
        value = BinaryExpr("add", value, Const(offsets[0], wide))
    value = lowering.let(arange.output.name, value)
    lowering.bind(arange.output, convert(lowering, value, arange.dtype))


def _permute(lowering: Lowering, permute: Permute) -> None:
    indices = permute_map(tile_layout(permute.operand), permute.dims)
    if indices is None:
        raise LoweringError(
            f"{tile_layout(permute.output)} moves elements of {tile_layout(permute.operand)} between threads",
            lowering.location,
        )
    value = packed_gather(lowering, (lowering.tile(permute.operand),), indices)
    lowering.bind(permute.output, lowering.let(permute.output.name, value))


def _view(lowering: Lowering, view: View) -> None:
    source, result = tile_layout(view.operand), tile_layout(view.output)
    source_dtype, dtype = view.operand.type.dtype, view.dtype
    if bit_layout(source, source_dtype.nbits) != bit_layout(result, dtype.nbits):
        raise LoweringError(
            f"a view from {source} to {result} would move bits between threads or slots", lowering.location
        )
    register = lowering.tile(view.operand)
    result_type = register_type(dtype, result.local_size)
    if register.type != result_type:
        register = lowering.let(view.output.name, Bitcast(dtype, result.local_size, register))
    lowering.bind(view.output, register)


HANDLERS: dict[type, Handler] = {
    Unary: _unary,
    Binary: _binary,
    Where: _where,
    Arange: _arange,
    Permute: _permute,
    View: _view,
}

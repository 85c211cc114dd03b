"""The LLVM values of Thread IR's non-arithmetic expressions: constants, the thread's indices, addresses, and
the packing and unpacking of short vectors (arithmetic and casts are ``arithmetic`` and ``casts``).

Each handler ``(context, expr) -> ir.Value`` emits at ``context.builder``. The indices are read once per
kernel, in the entry block (``context.once``): one ``mov`` from the special register, whose value dominates
every use, wherever in the loops and branches the program reads it. Vectors move through LLVM's
``extractelement``, ``insertelement`` and ``shufflevector``, which LLVM's O3 folds into one another, so a
chain of gathers costs only the moves that its final element order needs.

>>> from tilevm.codegen.expressions import EXPRESSIONS
>>> sorted(cls.__name__ for cls in EXPRESSIONS)[:4]
['Bitcast', 'BlockIndex', 'Const', 'Element']
"""

from __future__ import annotations

import functools

from tilevm.codegen.context import FunctionContext
from tilevm.codegen.llvm_types import ir, llvm_dtype, llvm_type
from tilevm.dtypes import DType, encode
from tilevm.ir.expr import BlockIndex, Const, Expr, GridSize
from tilevm.ir.semantics import to_carrier
from tilevm.ir.thread import (
    Bitcast,
    Element,
    Gather,
    LaneIndex,
    Pack,
    PointerAdd,
    PointerCast,
    Select,
    SharedAddress,
    SharedPointer,
    ThreadIndex,
    WarpIndex,
)
from tilevm.ir.types import ScalarType

__all__ = ["EXPRESSIONS", "constant", "poison"]

_I32 = ir.IntType(32)
_AXES = "xyz"


class _Poison(ir.FormattedConstant):
    """``poison``, which llvmlite cannot spell: its constants of a vector type repeat their value per
    element, and a formatted one then prints as a tuple."""

    def __init__(self, value_type: ir.Type) -> None:
        self.type = value_type
        self.constant = "poison"


def poison(value_type: ir.Type) -> ir.Value:
    """LLVM's ``poison`` of ``value_type``: the start of an ``insertelement`` chain, the unused operand of a
    ``shufflevector`` (unlike ``undef``, it lets LLVM drop the lanes nobody reads)."""
    return _Poison(value_type)


def constant(dtype: DType, value: int | float | bool) -> ir.Constant:
    """The LLVM constant of ``value`` as a ``dtype`` register: rounded into the dtype first (as the SIMT
    interpreter does), machine floats as themselves, everything else as its bits (a storage dtype's code,
    an integer's two's complement, bool as 0 or 1).

    Made once per value and dtype (rounding through numpy costs a tenth of a millisecond, and a kernel has
    hundreds of constants): floats are told apart by their bits, so ``-0.0`` is not ``0.0``.

    >>> from tilevm.dtypes import float16, uint8
    >>> str(constant(uint8, 200)), str(constant(float16, -0.0)), constant(float16, 0.0).constant
    ('i8 -56', 'half 0x8000000000000000', 0.0)
    """
    return _constant(dtype, type(value), value.hex() if isinstance(value, float) else value, value)


@functools.lru_cache(maxsize=4096)
def _constant(dtype: DType, kind: type, key: object, value: int | float | bool) -> ir.Constant:
    """``constant``, cached by ``(dtype, kind, key)``; ``value`` is what the key stands for."""
    carrier = to_carrier(value, dtype)
    element = llvm_dtype(dtype)
    if isinstance(element, ir.IntType):
        if dtype.kind == "bool":
            return ir.Constant(element, int(bool(carrier)))
        code = int(encode(carrier.reshape(1), dtype)[0]) if dtype.is_float else int(carrier)
        # LLVM reads an iN literal as signed: write codes of N bits in two's complement.
        return ir.Constant(element, code - (1 << dtype.nbits) if code >> (dtype.nbits - 1) & 1 else code)
    return ir.Constant(element, float(carrier))


def _const(context: FunctionContext, expr: Const) -> ir.Value:
    return constant(expr.dtype, expr.value)


def _special_register(context: FunctionContext, name: str) -> ir.Value:
    """``%name`` (``tid.x``, ``ctaid.y``, ...), read once in the entry block."""
    intrinsic = f"llvm.nvvm.read.ptx.sreg.{name}"
    return context.once(("sreg", name), lambda: context.call(intrinsic, _I32, []))


def _block_index(context: FunctionContext, expr: BlockIndex) -> ir.Value:
    return _special_register(context, f"ctaid.{_AXES[expr.axis]}")


def _grid_size(context: FunctionContext, expr: GridSize) -> ir.Value:
    return _special_register(context, f"nctaid.{_AXES[expr.axis]}")


def _thread_index(context: FunctionContext, expr: ThreadIndex) -> ir.Value:
    return _special_register(context, "tid.x")


def _lane_index(context: FunctionContext, expr: LaneIndex) -> ir.Value:
    # tid % 32, not %laneid: blocks are 1-D, so this is the lane, and LLVM knows its range and its relation
    # to the warp index (a mov from %laneid is opaque to it).
    thread = _thread_index(context, expr)
    return context.once(("lane",), lambda: context.builder.and_(thread, ir.Constant(_I32, 31), name="lane"))


def _warp_index(context: FunctionContext, expr: WarpIndex) -> ir.Value:
    # tid / 32, the logical warp (%warpid is the physical slot, which may change during the kernel)
    thread = _thread_index(context, expr)
    return context.once(("warp",), lambda: context.builder.lshr(thread, ir.Constant(_I32, 5), name="warp"))


def _byte_offset(context: FunctionContext, offset: Expr) -> ir.Value:
    """A Thread IR integer offset as a ``getelementptr`` index: LLVM reads an index as signed, so unsigned
    offsets narrower than 64 bits are zero-extended first."""
    value = context.value(offset)
    dtype = offset.type.dtype
    if not dtype.is_signed and dtype.nbits < 64:
        return context.builder.zext(value, ir.IntType(64))
    return value


def _byte_address(context: FunctionContext, base: ir.Value, offset: Expr) -> ir.Value:
    return context.builder.gep(base, [_byte_offset(context, offset)], source_etype=ir.IntType(8))


def _shared_pointer(context: FunctionContext, expr: SharedPointer) -> ir.Value:
    return _byte_address(context, context.shared_memory, expr.offset)


def _shared_address(context: FunctionContext, expr: SharedAddress) -> ir.Value:
    # shared pointers are 32 bits (--nvptx-short-ptr): the address in the shared window, unchanged
    return context.builder.ptrtoint(context.value(expr.pointer), _I32)


def _pointer_add(context: FunctionContext, expr: PointerAdd) -> ir.Value:
    return _byte_address(context, context.value(expr.pointer), expr.offset)


def _pointer_cast(context: FunctionContext, expr: PointerCast) -> ir.Value:
    # Pointers are opaque: the dtype only says what the loads and stores through it move.
    return context.value(expr.pointer)


def _element(context: FunctionContext, expr: Element) -> ir.Value:
    return context.builder.extract_element(context.value(expr.vector), ir.Constant(_I32, expr.index))


def _pack(context: FunctionContext, expr: Pack) -> ir.Value:
    vector = poison(llvm_type(expr.type))
    for index, element in enumerate(expr.elements):
        vector = context.builder.insert_element(vector, context.value(element), ir.Constant(_I32, index))
    return vector


def _bitcast(context: FunctionContext, expr: Bitcast) -> ir.Value:
    value = context.value(expr.operand)
    target = llvm_type(expr.type)
    # int32 and uint32 (or a float8 and an int8) are both iN to LLVM, which has no bitcast of a type to itself
    if value.type == target:
        return value
    if not (_odd_elements(value.type) or _odd_elements(target)):
        return context.builder.bitcast(value, target)
    # Vectors of 3, 5, 6 or 7-bit elements (the codes of such data: <16 x i6> in <3 x i32>) never meet an LLVM
    # bitcast: LLVM 22's InstCombine fails an assertion (scaleShuffleMaskElts) on shuffles around bitcasts of
    # lengths that do not divide each other, and the NVPTX legalizer of such a bitcast, and of the integers
    # wider than 64 bits that hold such vectors whole, gave wrong bits on an H100. The bits go through 32-bit
    # words instead, element by element with shifts by constants, each odd element through an identity move
    # that LLVM cannot see through (else InstCombine rebuilds the vector bitcast). The words an odd vector
    # was made from are remembered, so that a bitcast back to words (a view of bytes as int3 codes, then
    # the cast's 32-bit words) reuses them and leaves the element-by-element round trip dead.
    words = _to_words(context, value)
    result = _from_words(context, words, target)
    if _odd_elements(target):
        context.words_of_odd[id(result)] = (result, words)
    return result


def _odd_elements(value_type: ir.Type) -> bool:
    """Whether ``value_type`` is a vector of integers whose width is not a power of two (3, 5, 6, 7 bits)."""
    if not isinstance(value_type, ir.VectorType) or not isinstance(value_type.element, ir.IntType):
        return False
    width = value_type.element.width
    return width & (width - 1) != 0


def _element_bits(value_type: ir.Type) -> int:
    element = value_type.element if isinstance(value_type, ir.VectorType) else value_type
    if isinstance(element, ir.IntType):
        return element.width
    return 32 if element == ir.FloatType() else 16  # half and bfloat


def _count(value_type: ir.Type) -> int:
    return value_type.count if isinstance(value_type, ir.VectorType) else 1


def _to_words(context: FunctionContext, value: ir.Value) -> list[ir.Value]:
    """The bits of ``value`` as 32-bit words, word 0 holding element 0's lowest bits (the last word padded
    with zeros or poison)."""
    builder, width, count = context.builder, _element_bits(value.type), _count(value.type)
    words_needed = -(-width * count // 32)
    if not _odd_elements(value.type):
        element = value.type.element if isinstance(value.type, ir.VectorType) else value.type
        padded_count = words_needed * 32 // width
        vector = value
        if not isinstance(value.type, ir.VectorType):
            vector = builder.insert_element(poison(ir.VectorType(element, 1)), value, ir.Constant(_I32, 0))
        if padded_count != count:
            mask = [index if index < count else count for index in range(padded_count)]
            zero = ir.Constant(ir.VectorType(element, _count(vector.type)), None)
            vector = builder.shuffle_vector(vector, zero, _mask(mask))
        words = builder.bitcast(vector, ir.VectorType(_I32, words_needed))
        return [builder.extract_element(words, ir.Constant(_I32, index)) for index in range(words_needed)]
    known = context.words_of_odd.get(id(value))
    if known is not None and known[0] is value and len(known[1]) == words_needed:
        return list(known[1])
    words: list[ir.Value] = [ir.Constant(_I32, 0)] * words_needed
    for index in range(count):
        part = builder.zext(_opaque(context, builder.extract_element(value, ir.Constant(_I32, index))), _I32)
        position = index * width
        word, shift = divmod(position, 32)
        words[word] = builder.or_(words[word], builder.shl(part, ir.Constant(_I32, shift)))
        if shift + width > 32:  # the element's high bits open the next word
            high = builder.lshr(part, ir.Constant(_I32, 32 - shift))
            words[word + 1] = builder.or_(words[word + 1], high)
    return words


def _from_words(context: FunctionContext, words: list[ir.Value], target: ir.Type) -> ir.Value:
    """The register of type ``target`` whose bits are those of ``words`` (``_to_words``'s order)."""
    builder, width, count = context.builder, _element_bits(target), _count(target)
    if not _odd_elements(target):
        vector = poison(ir.VectorType(_I32, len(words)))
        for index, word in enumerate(words):
            vector = builder.insert_element(vector, word, ir.Constant(_I32, index))
        element = target.element if isinstance(target, ir.VectorType) else target
        padded = builder.bitcast(vector, ir.VectorType(element, len(words) * 32 // width))
        if not isinstance(target, ir.VectorType):
            return builder.extract_element(padded, ir.Constant(_I32, 0))
        if padded.type.count == count:
            return padded
        return builder.shuffle_vector(padded, poison(padded.type), _mask(list(range(count))))
    result = poison(target)
    for index in range(count):
        word, shift = divmod(index * width, 32)
        bits = builder.lshr(words[word], ir.Constant(_I32, shift)) if shift else words[word]
        if shift + width > 32:  # the element's high bits are in the next word
            bits = builder.or_(bits, builder.shl(words[word + 1], ir.Constant(_I32, 32 - shift)))
        part = _opaque(context, builder.trunc(bits, target.element))
        result = builder.insert_element(result, part, ir.Constant(_I32, index))
    return result


def _opaque(context: FunctionContext, element: ir.Value) -> ir.Value:
    """A narrow integer moved through an identity ``mov.b16`` in inline PTX, which ptxas removes."""
    builder, register = context.builder, ir.IntType(16)
    moved = context.inline_ptx(register, "mov.b16 $0, $1;", "=h,h", [builder.zext(element, register)])
    return builder.trunc(moved, element.type)


def _select(context: FunctionContext, expr: Select) -> ir.Value:
    # LLVM's select takes an i1 condition for whole vectors, or an <N x i1> for each element: both of Thread
    # IR's forms.
    return context.builder.select(
        context.value(expr.condition), context.value(expr.if_true), context.value(expr.if_false)
    )


def _gather(context: FunctionContext, expr: Gather) -> ir.Value:
    """One ``shufflevector`` per pair of vector sources of one type that the result reads (merged into the
    result so far) and one ``insertelement`` per scalar lane: a slice, a reorder, an interleave or a
    concatenation of two vectors is a single instruction, and LLVM folds the rest."""
    values = [context.value(source) for source in expr.sources]
    # (source number, element of that source) of each element of the row of all sources
    row = [(number, element) for number, value in enumerate(values) for element in range(_length(value))]
    picks = [row[index] for index in expr.indices]
    if isinstance(expr.type, ScalarType):
        ((number, element),) = picks
        value = values[number]
        if isinstance(value.type, ir.VectorType):
            return context.builder.extract_element(value, ir.Constant(_I32, element))
        return value
    return _assemble(context, llvm_type(expr.type), values, picks)


def _length(value: ir.Value) -> int:
    return value.type.count if isinstance(value.type, ir.VectorType) else 1


def _assemble(
    context: FunctionContext, result_type: ir.VectorType, values: list[ir.Value], picks: list[tuple[int, int]]
) -> ir.Value:
    builder, length = context.builder, len(picks)
    used = sorted({number for number, _ in picks})
    vectors = [number for number in used if isinstance(values[number].type, ir.VectorType)]
    result = None
    while vectors:
        first = vectors.pop(0)
        partner = next((number for number in vectors if values[number].type == values[first].type), None)
        group = {first: 0}
        if partner is not None:
            vectors.remove(partner)
            group[partner] = values[first].type.count  # a shuffle's second vector follows its first
        # the group's elements at their lanes of the result; the other lanes, which the merge below
        # overwrites, read element 0 (llvmlite takes no poison lane in a mask; LLVM's O3 drops them)
        mask = [group[number] + element if number in group else 0 for number, element in picks]
        second = values[partner] if partner is not None else poison(values[first].type)
        part = builder.shuffle_vector(values[first], second, _mask(mask))
        if result is None:
            result = part
        else:
            merge = [length + lane if picks[lane][0] in group else lane for lane in range(length)]
            result = builder.shuffle_vector(result, part, _mask(merge))
    for lane, (number, _) in enumerate(picks):
        if not isinstance(values[number].type, ir.VectorType):
            result = poison(result_type) if result is None else result
            result = builder.insert_element(result, values[number], ir.Constant(_I32, lane))
    return result


def _mask(indices: list[int]) -> ir.Constant:
    """A ``shufflevector`` mask."""
    return ir.Constant(ir.VectorType(_I32, len(indices)), [ir.Constant(_I32, index) for index in indices])


EXPRESSIONS = {
    Const: _const,
    BlockIndex: _block_index,
    GridSize: _grid_size,
    ThreadIndex: _thread_index,
    LaneIndex: _lane_index,
    WarpIndex: _warp_index,
    SharedPointer: _shared_pointer,
    SharedAddress: _shared_address,
    PointerAdd: _pointer_add,
    PointerCast: _pointer_cast,
    Element: _element,
    Pack: _pack,
    Bitcast: _bitcast,
    Select: _select,
    Gather: _gather,
}

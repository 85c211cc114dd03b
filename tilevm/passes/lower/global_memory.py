"""Lowering of the global-memory instructions: ``load_global``, ``store_global``, ``atomic_global`` and
``load_scalar`` (``tilevm.ir.global_access``), with the semantics of the reference executor
(``tilevm.runtime.reference.global_view``): elements outside the tensor are never touched; a load gives
``other`` (zero when unset) there.

Each thread moves its elements in the groups that ``tilevm.passes.lower.vectorize`` plans, one predicated
``load``/``store`` of up to 16 bytes a group:

- a group known to lie wholly in or wholly out of bounds (*exact*) is one access, predicated on its first
  element being in bounds;
- a group that may straddle the tensor's end (a ragged size whose divisibility is unknown) is one access
  when it lies wholly in bounds, and narrower accesses otherwise (an element, or a byte of sub-byte
  elements when no byte straddles the end), each predicated on its own bounds, inside an ``if`` so that
  only the threads at the end run the narrow accesses;
- a group of sub-byte elements narrower than a byte is loaded with the byte that holds it, shifted down.

Sub-byte stores write whole bytes only, each holding elements of one thread and nothing else: groups of
whole bytes, and no byte across the tensor's end, which the index analysis shows when the pointer, the
offsets, the sizes and the strides are known multiples of 16 (the launch's specialization) and the layout
gives each thread runs of a byte or more. A store that would write part of a byte (elements of several
threads in one byte, a byte across a ragged end) raises a ``LoweringError`` at its line: writing part of a
byte needs a read-modify-write, which races with the threads (of any block) writing the rest of the byte.
Elements of 3, 5, 6 or 7 bits straddle bytes and move as bytes (``global_straddling``).

Replicated layouts write once: only the first replica of each element stores it or adds it atomically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tilevm.dtypes import (
    DType,
    bfloat16,
    boolean,
    float16,
    float32,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.dtypes.codec import encode
from tilevm.ir import AtomicGlobal, AtomicScalar, LoadGlobal, LoadScalar, StoreGlobal
from tilevm.ir.expr import CastExpr, Const, Expr, UnaryExpr, Var
from tilevm.ir.stmt import AssignScalar, DeclareScalar, If, LetScalar
from tilevm.ir.thread import Atomic, Bitcast, Element, Gather, Load, PointerAdd, Select, Store, Trap
from tilevm.passes.lower.global_partial_bytes import store_through_words
from tilevm.passes.lower.global_straddling import byte_groups, load_codes, pack_codes, store_byte_groups
from tilevm.passes.lower.global_window import (
    TRUE,
    ThreadWindow,
    as_int32,
    binary,
    replica_condition,
    thread_window,
)
from tilevm.passes.lower.lowering import (
    GlobalTensor,
    Handler,
    Lowering,
    LoweringError,
    splat,
    tile_layout,
    vector_length,
)
from tilevm.passes.lower.packed_gather import packed_gather
from tilevm.passes.lower.vectorize import AccessPlan, locals_in_runs, plan_access

__all__ = ["HANDLERS", "checked_element"]

#: the dtypes Thread IR selects on (PTX ``selp``); others (storage only) are selected as raw bits
_SELECTABLE = frozenset(
    (boolean, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float16, bfloat16, float32)
)
#: the bits atomics act on
_ATOMIC_BITS = (16, 32, 64)


def _load_global(lowering: Lowering, instruction: LoadGlobal) -> None:
    tensor = lowering.global_tensor(instruction.tensor)
    layout = tile_layout(instruction.output)
    window = thread_window(lowering, tensor, instruction.offsets, instruction.dims, layout)
    other = instruction.other if instruction.other is not None else Const(0, tensor.dtype)
    if _straddles(tensor.dtype):
        codes = [
            load_codes(lowering, tensor, window.address(local), window.in_bounds(local), other)
            for local in range(layout.local_size)
        ]
        value = pack_codes(codes, tensor.dtype)
    else:
        window, positions = _widest_window(lowering, instruction, window)
        value = _concat(lowering, _load_groups(lowering, instruction, window, other))
        if positions is not None:  # loaded in runs: back to the tile's order (a renaming of registers)
            value = packed_gather(lowering, (value,), positions)
    lowering.bind(instruction.output, lowering.let(instruction.output.name, value))


def _widest_window(
    lowering: Lowering, instruction: LoadGlobal, window: ThreadWindow
) -> tuple[ThreadWindow, tuple[int, ...] | None]:
    """``window``, or the same elements with each thread's locals in runs along the contiguous dim
    (``locals_in_runs``) where that makes wider accesses, with each original local's position there."""
    plan = _plan(lowering, instruction, window)
    if plan.dim is None:
        return window, None
    reordered, positions = locals_in_runs(window.layout, plan.dim)
    candidate = dataclasses.replace(window, layout=reordered)
    if _plan(lowering, instruction, candidate).group > plan.group:
        return candidate, positions
    return window, None


def _load_groups(
    lowering: Lowering, instruction: LoadGlobal, window: ThreadWindow, other: Expr
) -> list[Expr]:
    """The thread's elements, a register a group, in the accesses that vectorization plans."""
    plan = _plan(lowering, instruction, window)
    pieces = []
    for local in range(0, window.layout.local_size, plan.group):
        if plan.exact:
            # the whole group is in bounds when its first element is
            pointer = _element_pointer(lowering, window, local)
            pieces.append(
                _load_at(lowering, window.tensor, pointer, plan.group, other, window.in_bounds(local))
            )
        else:
            pieces.append(_load_ragged(lowering, window, plan, local, other))
    return pieces


def _load_ragged(lowering: Lowering, window: ThreadWindow, plan: AccessPlan, local: int, other: Expr) -> Var:
    """A group that may straddle the end: one access when it is wholly in bounds, else one a unit."""
    full = lowering.let("full", window.in_bounds(local, plan.group, plan.dim))
    register = lowering.define(DeclareScalar, "group", init=splat(other, plan.group))
    with lowering.collect() as whole:
        value = _load_at(
            lowering, window.tensor, _element_pointer(lowering, window, local), plan.group, other, TRUE
        )
        lowering.emit(AssignScalar(variable=register, value=value))
    with lowering.collect() as elements:
        values = [
            _load_at(lowering, window.tensor, _element_pointer(lowering, window, local + step), plan.unit,
                     other, window.in_bounds(local + step))
            for step in range(0, plan.group, plan.unit)
        ]  # fmt: skip
        lowering.emit(AssignScalar(variable=register, value=_concat(lowering, values)))
    lowering.emit(If(condition=full, then_body=tuple(whole), else_body=tuple(elements)))
    return register


def _element_pointer(lowering: Lowering, window: ThreadWindow, local: int) -> ElementPointer:
    """Where the thread's element at ``local`` is: the pointer to its byte, and for sub-byte elements its
    address in elements (which says where in the byte it lies)."""
    if window.tensor.dtype.nbits >= 8:
        return ElementPointer(window.byte_pointer(lowering, local), None)
    address = lowering.let("element", window.address(local))
    return ElementPointer(_byte_pointer(window.tensor.pointer, window.tensor.dtype, address), address)


def _load_at(
    lowering: Lowering, tensor: GlobalTensor, at: ElementPointer, count: int, other: Expr, predicate: Expr
) -> Expr:
    """``count`` consecutive elements of ``tensor`` from the element ``at``, in one access where
    ``predicate`` holds; ``other`` in each element elsewhere, where nothing is read."""
    dtype = tensor.dtype
    predicate = lowering.let("in_bounds", predicate)
    keep = predicate == TRUE or _is_zero_code(other)  # a load that reads nothing gives zero
    bits = count * dtype.nbits
    if bits >= 8:
        loaded = lowering.define(
            Load, "load", pointer=at.pointer, width=bits // 8, predicate=_predicate(predicate)
        )
        return loaded if keep else _select(predicate, loaded, splat(other, count))
    # Inside one byte: load the byte, move the group to its lowest bits, keep ``count`` elements.
    per_byte, address = 8 // dtype.nbits, at.address
    assert address is not None, "a sub-byte element's pointer comes with its address"
    byte = lowering.define(Load, "byte", pointer=at.pointer, width=1, predicate=_predicate(predicate))
    position = binary("mul", binary("and", address, Const(per_byte - 1)), Const(dtype.nbits))
    shifted = binary("shr", Bitcast(uint8, 1, byte), CastExpr(position, uint8))
    if not keep:
        shifted = Select(predicate, shifted, Bitcast(uint8, 1, splat(other, per_byte)))
    return Gather((Bitcast(dtype, per_byte, shifted),), tuple(range(count)))


def _store_global(lowering: Lowering, instruction: StoreGlobal) -> None:
    tensor = lowering.global_tensor(instruction.tensor)
    layout = tile_layout(instruction.value)
    window = thread_window(lowering, tensor, instruction.offsets, instruction.dims, layout)
    value = lowering.tile(instruction.value)
    writer = lowering.let("writer", replica_condition(layout, lowering.thread))
    if _straddles(tensor.dtype):
        (info,) = lowering.indices.accesses[instruction]
        if byte_groups(window, info) is None:
            store_through_words(lowering, window, value, writer, _pointer_divisibility(lowering, tensor))
        else:
            store_byte_groups(lowering, window, value, writer)
        return
    plan = _plan(lowering, instruction, window)
    if not plan.writes_whole_bytes:
        # bytes shared with other threads, or with what lies past a ragged end: atomics on their words
        store_through_words(lowering, window, value, writer, _pointer_divisibility(lowering, tensor))
        return
    for local in range(0, layout.local_size, plan.group):
        piece = _slice(lowering, value, local, plan.group, layout.local_size)
        if plan.exact:
            _store_at(lowering, window, local, piece, binary("and", writer, window.in_bounds(local)))
        else:
            _store_ragged(lowering, window, plan, local, piece, writer)


def _store_ragged(
    lowering: Lowering, window: ThreadWindow, plan: AccessPlan, local: int, piece: Expr, writer: Expr
) -> None:
    full = lowering.let("full", window.in_bounds(local, plan.group, plan.dim))
    with lowering.collect() as whole:
        _store_at(lowering, window, local, piece, writer)
    with lowering.collect() as elements:
        for step in range(0, plan.group, plan.unit):
            unit = _slice(lowering, piece, step, plan.unit, plan.group)
            in_bounds = binary("and", writer, window.in_bounds(local + step))
            _store_at(lowering, window, local + step, unit, in_bounds)
    lowering.emit(If(condition=full, then_body=tuple(whole), else_body=tuple(elements)))


def _store_at(lowering: Lowering, window: ThreadWindow, local: int, value: Expr, predicate: Expr) -> None:
    pointer = _element_pointer(lowering, window, local).pointer
    lowering.emit(Store(pointer=pointer, value=lowering.let("value", value), predicate=_predicate(predicate)))


def _atomic_global(lowering: Lowering, instruction: AtomicGlobal) -> None:
    tensor = lowering.global_tensor(instruction.tensor)
    if tensor.dtype.nbits not in _ATOMIC_BITS:
        raise LoweringError(
            f"atomic_global on {tensor.dtype} elements: GPU atomics act on 16, 32 or 64 bits",
            lowering.location,
        )
    layout = tile_layout(instruction.value)
    window = thread_window(lowering, tensor, instruction.offsets, instruction.dims, layout)
    value = lowering.tile(instruction.value)
    writer = lowering.let("writer", replica_condition(layout, lowering.thread))
    for local in range(layout.local_size):
        lowering.define(
            Atomic, "old", op=instruction.op, pointer=window.byte_pointer(lowering, local),
            value=_slice(lowering, value, local, 1, layout.local_size),
            predicate=_predicate(binary("and", writer, window.in_bounds(local))),
        )  # fmt: skip


def checked_element(lowering: Lowering, instruction: LoadScalar | AtomicScalar) -> tuple[Expr, Expr]:
    """The address (in elements from the tensor's pointer) of the instruction's ``tensor[indices]``, and
    whether it lies inside the tensor. An index outside it, an error in Tile IR, traps (an error at the line
    in the SIMT interpreter, a failed launch on the GPU) before anything reads or writes it."""
    tensor = lowering.global_tensor(instruction.tensor)
    address: Expr = Const(0)
    inside: Expr = TRUE
    for index, size, stride in zip(instruction.indices, tensor.shape, tensor.strides):
        index, size = as_int32(index), as_int32(size)
        address = binary("add", address, binary("mul", index, as_int32(stride)))
        inside = binary("and", inside, binary("ge", index, Const(0)))
        inside = binary("and", inside, binary("lt", index, size))
    name = instruction.tensor.name if isinstance(instruction.tensor, Var) else "a tensor"
    message = f"{instruction.opname} of {name}: an index is outside its shape"
    lowering.emit(Trap(condition=UnaryExpr("not", inside), message=message))
    return address, inside


def _load_scalar(lowering: Lowering, instruction: LoadScalar) -> None:
    """Every thread loads the element (a uniform load)."""
    tensor = lowering.global_tensor(instruction.tensor)
    address, inside = checked_element(lowering, instruction)
    zero = Const(0, tensor.dtype)
    if _straddles(tensor.dtype):
        value = pack_codes([load_codes(lowering, tensor, address, inside, zero)], tensor.dtype)
    else:
        address = lowering.let("element", address)
        at = ElementPointer(_byte_pointer(tensor.pointer, tensor.dtype, address), address)
        value = _load_at(lowering, tensor, at, 1, zero, inside)
    lowering.emit(LetScalar(output=instruction.output, value=value))


def _plan(lowering: Lowering, instruction: LoadGlobal | StoreGlobal, window: ThreadWindow) -> AccessPlan:
    (info,) = lowering.indices.accesses[instruction]
    return plan_access(window.layout, window.tensor.dtype, window.dims, window.tensor.strides, info)


def _straddles(dtype: DType) -> bool:
    """Whether elements of ``dtype`` may straddle bytes (3, 5, 6 or 7 bits): see ``global_straddling``."""
    return bool(dtype.nbits & (dtype.nbits - 1))


def _pointer_divisibility(lowering: Lowering, tensor: GlobalTensor) -> int:
    """What the launch guarantees the tensor's address (in bytes) divides by: its parameter's promise."""
    for param in lowering.program.params:
        if param.variable is tensor.pointer:
            return param.divisibility
    return 1


@dataclass(frozen=True)
class ElementPointer:
    """The pointer to the byte that holds an element, and the element's address (in elements from the
    tensor's pointer) when its elements are narrower than a byte (None otherwise)."""

    pointer: Expr
    address: Expr | None


def _byte_pointer(pointer: Expr, dtype: DType, address: Expr) -> Expr:
    """The address of the byte holding element ``address`` (its first byte, for wider elements)."""
    if dtype.nbits >= 8:
        return PointerAdd(pointer, binary("mul", address, Const(dtype.nbits // 8)))
    per_byte = 8 // dtype.nbits
    return PointerAdd(pointer, binary("shr", address, Const(per_byte.bit_length() - 1)))


def _predicate(condition: Expr) -> Expr | None:
    return None if condition == TRUE else condition


def _is_zero_code(value: Expr) -> bool:
    """Whether ``value`` is a constant whose bits are all zero: what a load gives where it reads nothing."""
    return isinstance(value, Const) and int(encode(value.value, value.dtype)) == 0


def _select(condition: Expr, if_true: Expr, if_false: Expr) -> Expr:
    """``select``, on the raw bits (unsigned integers of the same width) for dtypes that have no ``selp``."""
    dtype, length = if_true.type.dtype, vector_length(if_true.type)
    if dtype in _SELECTABLE:
        return Select(condition, if_true, if_false)
    bits = dtype.nbits * length
    word = uint32 if bits % 32 == 0 else uint16 if bits % 16 == 0 else uint8
    count = bits // word.nbits
    raw = Select(condition, Bitcast(word, count, if_true), Bitcast(word, count, if_false))
    return Bitcast(dtype, length, raw)


def _slice(lowering: Lowering, value: Expr, start: int, count: int, length: int) -> Expr:
    """Elements ``start`` to ``start + count`` of a register of ``length`` elements."""
    if count == length:
        return value
    if count == 1:
        return Element(value, start)
    return packed_gather(lowering, (value,), range(start, start + count))


def _concat(lowering: Lowering, pieces: list[Expr]) -> Expr:
    if len(pieces) == 1:
        return pieces[0]
    total = sum(vector_length(piece.type) for piece in pieces)
    return packed_gather(lowering, pieces, range(total))


HANDLERS: dict[type, Handler] = {
    LoadGlobal: _load_global,
    StoreGlobal: _store_global,
    AtomicGlobal: _atomic_global,
    LoadScalar: _load_scalar,
}

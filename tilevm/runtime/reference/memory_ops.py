"""Handlers of the instructions that create views and tiles and move data (see ``tilevm.ir.global_access``,
``shared_tiles`` and ``async_copies``).

Global views evaluate their sizes and strides when they run. Fresh shared and register tiles (without
``init``) hold poison (``carrier.poison``), and so does a shared tile after ``free_shared``. Shared tiles
are bytes placed as ``tilevm.ir.shared_tiles`` says, at their planned offsets when the program has a plan (see
``shared``). Instructions run on whole tiles, so every write is seen by every later instruction; ``sync``
only marks the point after which a read or a write of shared bytes accessed before it is no race
(``races`` has the rules and their conservative choices).

>>> sorted(cls.__name__ for cls in HANDLERS)[:3]
['AllocRegister', 'AllocShared', 'AtomicGlobal']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tilevm.dtypes import float32, int32
from tilevm.ir import (
    AllocRegister,
    AllocShared,
    AtomicGlobal,
    AtomicScalar,
    Const,
    CopyAsync,
    CopyAsyncCommit,
    CopyAsyncWait,
    DotWait,
    Expr,
    FreeShared,
    GlobalView,
    Instruction,
    LoadGlobal,
    LoadScalar,
    LoadShared,
    PermuteShared,
    SharedDot,
    SliceShared,
    StoreGlobal,
    StoreShared,
    Sync,
)
from tilevm.ir.semantics import binary, to_carrier
from tilevm.layout.shared import permute_shared
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier, poison
from tilevm.runtime.reference.errors import ExecutionError
from tilevm.runtime.reference.global_memory import read_codes, write_codes
from tilevm.runtime.reference.global_view import GlobalTensor, atomic_window, load_window, store_window
from tilevm.runtime.reference.races import Access
from tilevm.runtime.reference.scalars import evaluate, evaluate_int
from tilevm.runtime.reference.shared import InFlightDot, SharedTile
from tilevm.runtime.reference.state import BlockState

__all__ = ["HANDLERS"]


def _ints(exprs: tuple[Expr, ...], state: BlockState, what: str) -> tuple[int, ...]:
    return tuple(evaluate_int(expr, state, what) for expr in exprs)


def _global_view(instruction: GlobalView, state: BlockState) -> None:
    shape = _ints(instruction.shape, state, "a global size")
    if any(size < 0 for size in shape):
        raise ExecutionError(f"global_view {instruction.output.name} has a negative size: {list(shape)}")
    strides = _ints(instruction.strides, state, "a global stride")
    state.bind(instruction.output, GlobalTensor(evaluate(instruction.pointer, state), shape, strides))


def _alloc_shared(instruction: AllocShared, state: BlockState) -> None:
    name = instruction.output.name
    footprint = instruction.footprint_bytes()
    pointer, unsynced = state.shared_memory.allocate(instruction.offset, footprint, instruction.dtype, name)
    tile = SharedTile.allocate(pointer, instruction.placement(), unsynced)
    tile.write(poison(instruction.dtype, instruction.shape, state.rng))
    state.bind(instruction.output, tile)


def _free_shared(instruction: FreeShared, state: BlockState) -> None:
    tile: SharedTile = evaluate(instruction.tensor, state)
    tile.check_ready("free")
    tile.write(poison(instruction.tensor.type.dtype, tile.shape, state.rng))


def _alloc_register(instruction: AllocRegister, state: BlockState) -> None:
    if instruction.init is None:
        value = poison(instruction.dtype, instruction.shape, state.rng)
    else:
        value = np.full(instruction.shape, evaluate(instruction.init, state))
    state.bind(instruction.output, value)


def _slice_shared(instruction: SliceShared, state: BlockState) -> None:
    tile: SharedTile = evaluate(instruction.tensor, state)
    index = _window_index(instruction, tile, _ints(instruction.offsets, state, "a slice offset"))
    layout = instruction.slice_layout(tile.layout)
    base = evaluate_int(instruction.base_offset(tile.layout, Const(tile.base, int32)), state, "a slice base")
    state.bind(instruction.output, tile.window(index, layout, base, instruction.output.name))


def _window_index(instruction: SliceShared, tile: SharedTile, offsets: tuple[int, ...]) -> tuple:
    """The numpy index of the slice's window in ``tile``, after checking it lies inside the tile."""
    extents = dict(zip(instruction.dims, instruction.shape))
    index: list[int | slice] = []
    for dim, (offset, size) in enumerate(zip(offsets, tile.shape)):
        extent = extents.get(dim, 1)
        if not 0 <= offset <= size - extent:
            raise ExecutionError(
                f"slice_shared of {tile.name}: offset {offset} with extent {extent} is outside dimension "
                f"{dim} of size {size}"
            )
        index.append(slice(offset, offset + extent) if dim in extents else offset)
    return tuple(index)


def _load_global(instruction: LoadGlobal, state: BlockState) -> None:
    tensor: GlobalTensor = evaluate(instruction.tensor, state)
    dtype = tensor.pointer.dtype
    other = to_carrier(0, dtype) if instruction.other is None else evaluate(instruction.other, state)
    offsets = _ints(instruction.offsets, state, "an offset")
    value = load_window(tensor, offsets, instruction.dims, instruction.shape, other)
    state.bind(instruction.output, value)


def _store_global(instruction: StoreGlobal, state: BlockState) -> None:
    tensor: GlobalTensor = evaluate(instruction.tensor, state)
    offsets = _ints(instruction.offsets, state, "an offset")
    store_window(tensor, offsets, instruction.dims, evaluate(instruction.value, state))


def _atomic_global(instruction: AtomicGlobal, state: BlockState) -> None:
    tensor: GlobalTensor = evaluate(instruction.tensor, state)
    offsets = _ints(instruction.offsets, state, "an offset")
    atomic_window(instruction.op, tensor, offsets, instruction.dims, evaluate(instruction.value, state))


def _load_shared(instruction: LoadShared, state: BlockState) -> None:
    tile: SharedTile = evaluate(instruction.tensor, state)
    tile.check_ready("read")
    state.bind(
        instruction.output, tile.read(_access("read", instruction, f"load_shared of {tile.description}"))
    )


def _dot_shared(instruction: SharedDot, state: BlockState) -> None:
    # the hardware's semantics are Dot's: exact products, one rounding of the sum (here in float64)
    tiles, operands = [], []
    if instruction.a_in_registers:  # a value: nothing can change it while the dot runs
        operands.append(evaluate(instruction.a, state).astype(np.float64))
    for name in ("a", "b")[instruction.a_in_registers :]:
        tile: SharedTile = evaluate(getattr(instruction, name), state)
        tile.check_ready("read")
        access = _access("read", instruction, f"dot_shared's {name}, {tile.description}")
        operands.append(tile.read(access).astype(np.float64))
        tiles.append(tile)
    accumulator = state.lookup_in_flight(instruction.accumulator)  # another in-flight dot's result may chain
    if isinstance(accumulator, InFlightDot):
        accumulator = accumulator.values
    result = to_carrier(operands[0] @ operands[1] + accumulator.astype(np.float64), float32)
    if not instruction.wait:
        where = f" at {instruction.loc}" if instruction.loc is not None else ""
        result = state.dots.start(result, tuple(tiles), f"the asynchronous dot{where}")
    state.bind(instruction.output, result)


def _store_shared(instruction: StoreShared, state: BlockState) -> None:
    tile: SharedTile = evaluate(instruction.tensor, state)
    tile.check_ready("write")
    tile.write(
        evaluate(instruction.value, state),
        _access("write", instruction, f"store_shared into {tile.description}"),
    )


def _copy_async(instruction: CopyAsync, state: BlockState) -> None:
    destination: SharedTile = evaluate(instruction.destination, state)
    source: GlobalTensor = evaluate(instruction.source, state)
    # Offsets are fixed when the copy starts; the memory is read when a wait completes it.
    offsets = _ints(instruction.offsets, state, "an offset")
    zero = to_carrier(0, source.pointer.dtype)
    # The copy may write as soon as it starts, and is seen by other threads after a sync that follows
    # its wait: it is checked for races both when it starts and when a wait completes it.
    access = _access("write", instruction, f"copy_async into {destination.description}")
    destination.unsynced.access(destination.bytes(), access, record=False)

    def apply() -> None:
        destination.write(load_window(source, offsets, instruction.dims, destination.shape, zero), access)

    state.copies.start(destination, apply)


def _permute_shared(instruction: PermuteShared, state: BlockState) -> None:
    """The same bytes and base, placed by the permuted layout (in-flight counts transposed likewise)."""
    tile: SharedTile = evaluate(instruction.tensor, state)
    dims = instruction.dims
    permuted = dataclasses.replace(
        tile,
        layout=permute_shared(tile.layout, dims),
        pending=tile.pending.transpose((*dims, len(dims))),
        name=instruction.output.name,
    )
    state.bind(instruction.output, permuted)


def _element(instruction: LoadScalar | AtomicScalar, state: BlockState) -> tuple[GlobalTensor, np.ndarray]:
    """The tensor and the address (a one-element array) of ``tensor[indices]``, which must lie inside it."""
    tensor: GlobalTensor = evaluate(instruction.tensor, state)
    indices = _ints(instruction.indices, state, "an index")
    if any(not 0 <= index < size for index, size in zip(indices, tensor.shape)):
        raise ExecutionError(
            f"{instruction.opname} of {tensor.pointer.name}{list(indices)}: the index is outside its shape "
            f"{list(tensor.shape)}"
        )
    address = sum(index * stride for index, stride in zip(indices, tensor.strides))
    return tensor, np.array([address], dtype=np.int64)


def _load_scalar(instruction: LoadScalar, state: BlockState) -> None:
    tensor, address = _element(instruction, state)
    codes = read_codes(tensor.pointer, address)
    state.bind(instruction.output, codes_to_carrier(codes, tensor.pointer.dtype).reshape(()))


def _atomic_scalar(instruction: AtomicScalar, state: BlockState) -> None:
    """Blocks run one after another, each instruction on the whole block: the update is one step, and
    everything the block did before it is done (and seen by later blocks), as on the GPU."""
    tensor, address = _element(instruction, state)
    dtype = tensor.pointer.dtype
    old = codes_to_carrier(read_codes(tensor.pointer, address, "atomic"), dtype).reshape(())
    value = evaluate(instruction.value, state)
    new = value if instruction.op == "exchange" else binary(instruction.op, old, value, dtype)
    write_codes(tensor.pointer, address, carrier_to_codes(np.reshape(new, (1,)), dtype), "atomic")
    state.bind(instruction.output, old)


def _access(kind: str, instruction: Instruction, description: str) -> Access:
    return Access(kind, description, instruction.loc)


HANDLERS: dict[type[Instruction], Callable[..., None]] = {
    GlobalView: _global_view,
    AllocShared: _alloc_shared,
    FreeShared: _free_shared,
    AllocRegister: _alloc_register,
    SliceShared: _slice_shared,
    LoadGlobal: _load_global,
    StoreGlobal: _store_global,
    AtomicGlobal: _atomic_global,
    LoadShared: _load_shared,
    SharedDot: _dot_shared,
    DotWait: lambda instruction, state: state.complete_dots(instruction.pending),
    StoreShared: _store_shared,
    CopyAsync: _copy_async,
    LoadScalar: _load_scalar,
    AtomicScalar: _atomic_scalar,
    CopyAsyncCommit: lambda instruction, state: state.copies.commit(),
    CopyAsyncWait: lambda instruction, state: state.copies.wait(instruction.pending),
    Sync: lambda instruction, state: state.shared_memory.sync(),
    PermuteShared: _permute_shared,
}

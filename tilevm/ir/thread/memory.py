"""Thread IR's memory instructions: loads and stores of 1 to 16 bytes, ``cp.async`` and its groups, the
block barrier, the GPU-scope fence, atomics and ``ldmatrix``. Each thread runs them on its own addresses;
``ldmatrix`` is warp-collective. The PTX ISA (``ld``, ``st``, ``cp.async``, ``bar.sync``, ``fence``, ``atom``,
``ldmatrix``) defines their meaning; each docstring names the instruction and what this IR keeps of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType
from tilevm.ir.expr import Expr, IRTypeError, Var, expect_choice
from tilevm.ir.expr import operator_error as scalar_operator_error
from tilevm.ir.inst import Instruction, describe, expect_scalar
from tilevm.ir.stmt import expect_condition
from tilevm.ir.thread.values import expect_pointer, register_bits
from tilevm.ir.types import AddressSpace, ScalarType, VectorType

__all__ = [
    "ACCESS_BYTES",
    "ATOMIC_OPS",
    "COPY_ASYNC_BYTES",
    "Atomic",
    "Barrier",
    "CopyAsyncCommitGroup",
    "CopyAsyncGroup",
    "CopyAsyncWaitGroup",
    "Fence",
    "Ldmatrix",
    "Load",
    "Store",
]

#: the widths of one thread's access (``ld``/``st`` of a ``.b8`` to a ``.v4.b32``)
ACCESS_BYTES = (1, 2, 4, 8, 16)
#: the sizes ``cp.async`` copies
COPY_ASYNC_BYTES = (4, 8, 16)
#: ``atom``'s operations (``exchange`` is ``.exch``); the old value is returned
ATOMIC_OPS = ("add", "max", "min", "and", "or", "xor", "exchange")
#: the number of 8x8 matrices ``ldmatrix`` loads (``.x1``, ``.x2``, ``.x4``)
LDMATRIX_COUNTS = (1, 2, 4)
#: bar.sync's barrier ids
BARRIER_COUNT = 16

_BOTH_SPACES = (AddressSpace.GLOBAL, AddressSpace.SHARED)


def expect_predicate(predicate: Expr | None) -> None:
    """A predicate, when given, is a bool scalar (PTX's ``@%p`` guard)."""
    if predicate is not None:
        expect_condition(predicate, "the predicate")


def access_type(dtype: DType, width: int) -> ScalarType | VectorType:
    """What one access of ``width`` bytes reads: a scalar when it holds one element, else a vector."""
    if width not in ACCESS_BYTES:
        raise IRTypeError(f"an access is {', '.join(map(str, ACCESS_BYTES))} bytes, got {width}")
    if (width * 8) % dtype.nbits:
        raise IRTypeError(f"{width} bytes do not hold a whole number of {dtype} elements")
    count = width * 8 // dtype.nbits
    return ScalarType(dtype) if count == 1 else VectorType(dtype, count)


@dataclass(frozen=True, eq=False, kw_only=True)
class Load(Instruction):
    """``output`` = the ``width`` bytes at ``pointer`` (PTX ``ld.global``/``ld.shared``, ``.v2``/``.v4``
    for 8 and 16 bytes), as a scalar or a vector of the pointer's dtype. The address must be aligned to
    ``width``. Where ``predicate`` is false nothing is read and ``output`` is zero (PTX: ``mov 0`` then a
    predicated ``@%p ld``).
    """

    output: Var
    pointer: Expr
    width: int
    predicate: Expr | None = None
    opname = "load"

    def result_type(self) -> ScalarType | VectorType:
        pointer = expect_pointer(self.pointer, "load's pointer", *_BOTH_SPACES)
        expect_predicate(self.predicate)
        return access_type(pointer.dtype, self.width)


@dataclass(frozen=True, eq=False, kw_only=True)
class Store(Instruction):
    """Write ``value`` (a scalar or vector of the pointer's dtype, of 1 to 16 bytes) at ``pointer`` (PTX
    ``st.global``/``st.shared``, aligned to its width); nothing where ``predicate`` is false."""

    pointer: Expr
    value: Expr
    predicate: Expr | None = None
    opname = "store"

    def result_type(self) -> None:
        pointer = expect_pointer(self.pointer, "store's pointer", *_BOTH_SPACES)
        expect_predicate(self.predicate)
        bits = register_bits(self.value.type)
        if bits is None or bits % 8:
            raise IRTypeError(
                f"store's value must be a scalar or vector of whole bytes, got {self.value.type}"
            )
        if access_type(pointer.dtype, bits // 8) != self.value.type:
            raise IRTypeError(f"cannot store a {describe(self.value.type)} through a {pointer}")


@dataclass(frozen=True, eq=False, kw_only=True)
class CopyAsyncGroup(Instruction):
    """Copy ``size`` bytes from global ``source`` to shared ``destination`` without passing through
    registers (PTX ``cp.async.ca.shared.global [dst], [src], cp-size, src-size``, ``.cg`` when ``cache`` is
    "global", which needs 16 bytes). Only the first ``source_size`` bytes are read; the rest of the
    destination is zero-filled (0 skips the read: a masked-off copy). The copy joins the thread's open
    group; ``CopyAsyncWaitGroup`` waits for it."""

    destination: Expr
    source: Expr
    size: int
    source_size: Expr
    cache: str = "all"
    opname = "cp_async"

    def result_type(self) -> None:
        expect_pointer(self.destination, "cp.async's destination", AddressSpace.SHARED)
        expect_pointer(self.source, "cp.async's source", AddressSpace.GLOBAL)
        if self.size not in COPY_ASYNC_BYTES:
            raise IRTypeError(
                f"cp.async copies {', '.join(map(str, COPY_ASYNC_BYTES))} bytes, got {self.size}"
            )
        expect_scalar(self.source_size, "cp.async's source size", integer=True)
        if self.cache not in ("all", "global"):
            raise IRTypeError(f"cp.async's cache is 'all' (.ca) or 'global' (.cg), got '{self.cache}'")
        if self.cache == "global" and self.size != 16:
            raise IRTypeError(f"cp.async.cg copies 16 bytes, got {self.size}")


@dataclass(frozen=True, eq=False, kw_only=True)
class CopyAsyncCommitGroup(Instruction):
    """Close the thread's open group of ``cp.async`` copies (PTX ``cp.async.commit_group``)."""

    opname = "cp_async_commit_group"


@dataclass(frozen=True, eq=False, kw_only=True)
class CopyAsyncWaitGroup(Instruction):
    """Wait until at most ``pending`` of the thread's committed groups are still in flight (PTX
    ``cp.async.wait_group N``); a barrier must follow before other threads read the data."""

    pending: int
    opname = "cp_async_wait_group"

    def result_type(self) -> None:
        if self.pending < 0:
            raise IRTypeError(f"cp.async.wait_group's pending count is 0 or more, got {self.pending}")


@dataclass(frozen=True, eq=False, kw_only=True)
class Barrier(Instruction):
    """Wait until every thread of the block reaches this barrier, and order their shared-memory accesses
    (PTX ``bar.sync barrier_id``, ``__syncthreads`` for 0). All threads must reach the same barrier."""

    barrier_id: int = 0
    opname = "barrier"

    def result_type(self) -> None:
        if not 0 <= self.barrier_id < BARRIER_COUNT:
            raise IRTypeError(f"a barrier id is 0 to {BARRIER_COUNT - 1}, got {self.barrier_id}")


@dataclass(frozen=True, eq=False, kw_only=True)
class Fence(Instruction):
    """An acquire-release fence at GPU scope (PTX ``fence.acq_rel.gpu``, ISA section "Memory Consistency
    Model", "Release and Acquire Patterns"): followed by a strong write (an ``atom``), it makes the
    thread's earlier accesses, and those ordered before them, visible to the GPU before that write; after a
    strong read, it orders the thread's later accesses after what that read observed."""

    opname = "fence"


@dataclass(frozen=True, eq=False, kw_only=True)
class Atomic(Instruction):
    """``output`` = the old value at ``pointer``, replaced by ``old op value`` in one indivisible step (PTX
    ``atom.global``/``atom.shared``; ``exchange`` stores ``value``). Nothing happens where ``predicate``
    is false, and ``output`` is zero."""

    output: Var
    op: str
    pointer: Expr
    value: Expr
    predicate: Expr | None = None
    opname = "atomic"

    def result_type(self) -> ScalarType:
        pointer = expect_pointer(self.pointer, "atomic's pointer", *_BOTH_SPACES)
        expect_predicate(self.predicate)
        value = expect_scalar(self.value, "atomic's value")
        expect_choice(self.op, ATOMIC_OPS, "atomic op")
        if value.dtype != pointer.dtype:
            raise IRTypeError(f"atomic {self.op} of a {value} value through a {pointer}")
        if value.dtype.nbits not in (16, 32, 64):
            raise IRTypeError(f"atomics act on 16, 32 or 64 bits, got {value.dtype}")
        reason = None if self.op == "exchange" else scalar_operator_error(self.op, value.dtype)
        if reason:
            raise IRTypeError(reason)
        return value


@dataclass(frozen=True, eq=False, kw_only=True)
class Ldmatrix(Instruction):
    """Load ``count`` 8x8 matrices of 16-bit elements from shared memory, warp-collectively (PTX
    ``ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16``). Lanes 8i to 8i+7 give, in ``pointer``,
    the addresses of the 8 rows (16 bytes each) of matrix i (lanes 0-7 for ``.x1``, 0-15 for ``.x2``).
    Output i of lane l holds elements (l // 4, 2 (l % 4)) and (l // 4, 2 (l % 4) + 1) of matrix i, in one
    ``vector<dtype, 2>``: the mma operand fragment; ``transpose`` reads each matrix transposed."""

    outputs: tuple[Var, ...]
    pointer: Expr
    count: int
    transpose: bool = False
    opname = "ldmatrix"
    defined_fields = ("outputs",)

    def result_type(self) -> tuple[VectorType, ...]:
        pointer = expect_pointer(self.pointer, "ldmatrix's pointer", AddressSpace.SHARED)
        if self.count not in LDMATRIX_COUNTS:
            raise IRTypeError(f"ldmatrix loads 1, 2 or 4 matrices, got {self.count}")
        if pointer.dtype.nbits != 16:
            raise IRTypeError(f"ldmatrix loads 16-bit elements, got {pointer.dtype}")
        return (VectorType(pointer.dtype, 2),) * self.count

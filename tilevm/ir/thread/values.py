"""Thread IR's own expressions: the indices of the running thread, shared-memory addresses, pointer
arithmetic, and the packing of short vectors. Thread IR also reuses Tile IR's ``Var``, ``Const``,
``BlockIndex``, ``GridSize``, ``UnaryExpr``, ``BinaryExpr`` and ``CastExpr`` on scalars.

>>> from tilevm.dtypes import float16
>>> from tilevm.ir.expr import Const
>>> str(PointerAdd(SharedPointer(float16, Const(256)), Const(16)).type)
'ptr<float16, shared>'
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType, boolean, int32, uint32
from tilevm.ir.expr import Expr, IRTypeError, Syntax
from tilevm.ir.inst import describe, expect_scalar
from tilevm.ir.types import AddressSpace, PointerType, ScalarType, Type, VectorType

__all__ = [
    "WARP_SIZE",
    "Bitcast",
    "Element",
    "Gather",
    "LaneIndex",
    "Pack",
    "PointerAdd",
    "PointerCast",
    "Select",
    "SharedAddress",
    "SharedPointer",
    "ThreadIndex",
    "WarpIndex",
    "expect_bits",
    "expect_pointer",
    "register_bits",
]

#: threads of a warp, which run warp-collective instructions (mma, ldmatrix, shuffles) together
WARP_SIZE = 32


def register_bits(value_type: Type) -> int | None:
    """The bits a register value of ``value_type`` holds: a scalar's or a vector's; None for other types."""
    if isinstance(value_type, ScalarType):
        return value_type.dtype.nbits
    if isinstance(value_type, VectorType):
        return value_type.nbits
    return None


def expect_bits(value: Expr, what: str, bits: int) -> ScalarType | VectorType:
    """``value`` is a scalar or a vector of exactly ``bits`` bits (a PTX ``.b32`` operand, say)."""
    if register_bits(value.type) != bits:
        raise IRTypeError(f"{what} must be a {bits}-bit scalar or vector, got {describe(value.type)}")
    return value.type


def expect_pointer(value: Expr, what: str, *spaces: AddressSpace) -> PointerType:
    """``value`` is a pointer into one of ``spaces``."""
    pointer = value.type
    if not isinstance(pointer, PointerType):
        raise IRTypeError(f"{what} must be a pointer, got {describe(pointer)}")
    if pointer.space not in spaces:
        expected = " or ".join(space.value for space in spaces)
        raise IRTypeError(f"{what} must point to {expected} memory, got {pointer}")
    return pointer


def _int32_index(_: Expr) -> ScalarType:
    """The type of the running thread's indices, which PTX's special registers hold."""
    return ScalarType(int32)


@dataclass(frozen=True)
class ThreadIndex(Expr):
    """The thread's index in its block, 0 to ``num_threads - 1`` (PTX ``%tid.x``; blocks are 1-D)."""

    opname = "thread_index"
    type = property(_int32_index)


@dataclass(frozen=True)
class LaneIndex(Expr):
    """The thread's lane in its warp, ``thread_index() % 32`` (PTX ``%laneid``)."""

    opname = "lane_index"
    type = property(_int32_index)


@dataclass(frozen=True)
class WarpIndex(Expr):
    """The thread's warp in its block, ``thread_index() // 32`` (PTX's ``%warpid`` may differ on the GPU,
    where a warp can migrate; this is the logical index that code generation computes)."""

    opname = "warp_index"
    type = property(_int32_index)


@dataclass(frozen=True)
class SharedPointer(Expr):
    """The address of byte ``offset`` of the block's shared memory, as elements of ``dtype``: the offsets
    come from shared-memory planning (PTX: a ``.shared`` address, 32 bits)."""

    dtype: DType
    offset: Expr
    syntax = Syntax.PARAMETERIZED
    opname = "shared_pointer"

    @property
    def type(self) -> PointerType:
        return PointerType(self.dtype, AddressSpace.SHARED)

    def result_type(self) -> PointerType:
        expect_scalar(self.offset, "a shared pointer's offset", integer=True)
        return self.type


@dataclass(frozen=True)
class SharedAddress(Expr):
    """The 32-bit address in the shared state space of a shared ``pointer`` (PTX ``cvta.to.shared``, LLVM
    ``ptrtoint`` of an ``addrspace(3)`` pointer): what a wgmma matrix descriptor encodes. It is the address
    of the block's dynamic shared memory plus the pointer's offset; the GPU may place that memory after a
    reserved area (an H100 at 1024), the SIMT interpreter at 0, so a program uses it only where the
    hardware wants an address, never as an offset."""

    pointer: Expr
    opname = "shared_address"

    @property
    def type(self) -> ScalarType:
        return ScalarType(uint32)

    def result_type(self) -> ScalarType:
        expect_pointer(self.pointer, "shared_address's pointer", AddressSpace.SHARED)
        return self.type


@dataclass(frozen=True)
class PointerAdd(Expr):
    """``pointer`` moved by ``offset`` bytes (bytes, not elements, so that sub-byte data is addressed the
    way the hardware does); the address space and element dtype stay."""

    pointer: Expr
    offset: Expr
    opname = "pointer_add"

    @property
    def type(self) -> Type:
        return self.pointer.type

    def result_type(self) -> PointerType:
        expect_scalar(self.offset, "a pointer offset", integer=True)
        return expect_pointer(self.pointer, "pointer_add's pointer", *AddressSpace)


@dataclass(frozen=True)
class PointerCast(Expr):
    """``pointer``'s address, read as a pointer to elements of ``dtype`` in the same address space (LLVM: no
    instruction, pointers are opaque): how lowering reads the bytes of a global tensor whose elements
    straddle bytes (3, 5, 6 or 7 bits), which no access of whole elements can load."""

    dtype: DType
    pointer: Expr
    syntax = Syntax.PARAMETERIZED
    opname = "pointer_cast"

    @property
    def type(self) -> PointerType:
        return PointerType(self.dtype, self.pointer.type.space)

    def result_type(self) -> PointerType:
        expect_pointer(self.pointer, "pointer_cast's pointer", *AddressSpace)
        return self.type


@dataclass(frozen=True)
class Element(Expr):
    """Element ``index`` of a vector register (element 0 holds the lowest bits)."""

    vector: Expr
    index: int
    opname = "element"

    @property
    def type(self) -> ScalarType:
        return ScalarType(self.vector.type.dtype)

    def result_type(self) -> ScalarType:
        vector = self.vector.type
        if not isinstance(vector, VectorType):
            raise IRTypeError(f"element's operand must be a vector, got {describe(vector)}")
        if not 0 <= self.index < vector.length:
            raise IRTypeError(f"element {self.index} of a {vector}: the index is 0 to {vector.length - 1}")
        return self.type


@dataclass(frozen=True)
class Pack(Expr):
    """A vector of the scalars ``elements``, all of one dtype, the first in the lowest bits (PTX ``mov.b32
    %r, {%h0, %h1}``)."""

    elements: tuple[Expr, ...]
    opname = "pack"

    @property
    def type(self) -> VectorType:
        return VectorType(self.elements[0].type.dtype, len(self.elements))

    def result_type(self) -> VectorType:
        if len(self.elements) < 2:
            raise IRTypeError(f"pack needs two elements or more, got {len(self.elements)}")
        first = expect_scalar(self.elements[0], "pack's element 0")
        for position, element in enumerate(self.elements):
            if expect_scalar(element, f"pack's element {position}") != first:
                raise IRTypeError(f"pack's element {position} is a {element.type}, element 0 a {first}")
        return self.type


@dataclass(frozen=True)
class Bitcast(Expr):
    """The bits of a scalar or vector register read as ``length`` values of ``dtype`` (a scalar when
    ``length`` is 1): ``bitcast<uint32, 1>(%h2)`` gives the 32 bits of an f16x2 to ``lop3`` and ``prmt``."""

    dtype: DType
    length: int
    operand: Expr
    syntax = Syntax.PARAMETERIZED
    opname = "bitcast"

    @property
    def type(self) -> ScalarType | VectorType:
        return ScalarType(self.dtype) if self.length == 1 else VectorType(self.dtype, self.length)

    def result_type(self) -> ScalarType | VectorType:
        if self.length < 1:
            raise IRTypeError(f"bitcast's length must be positive, got {self.length}")
        bits = self.dtype.nbits * self.length
        expect_bits(self.operand, f"the operand of a bitcast to {self.type}", bits)
        return self.type


@dataclass(frozen=True)
class Select(Expr):
    """``if_true`` where ``condition`` holds, else ``if_false``, element by element (PTX ``selp``, LLVM
    ``select``): the two values share a type, scalar or vector, and the condition is a bool scalar or a
    bool vector of their length."""

    condition: Expr
    if_true: Expr
    if_false: Expr
    opname = "select"

    @property
    def type(self) -> Type:
        return self.if_true.type

    def result_type(self) -> ScalarType | VectorType:
        value = self.if_true.type
        if not isinstance(value, ScalarType | VectorType):
            raise IRTypeError(f"select's values must be scalars or vectors, got {describe(value)}")
        if self.if_false.type != value:
            raise IRTypeError(f"select of a {describe(value)} and a {describe(self.if_false.type)}")
        condition = self.condition.type
        length = value.length if isinstance(value, VectorType) else 1
        allowed = (ScalarType(boolean), VectorType(boolean, length))
        if condition not in allowed:
            expected = " or ".join(str(option) for option in allowed[: 1 + (length > 1)])
            raise IRTypeError(f"select's condition must be a {expected}, got {describe(condition)}")
        return value


@dataclass(frozen=True)
class Gather(Expr):
    """Elements picked from registers by static positions (LLVM ``shufflevector``): the ``sources`` (scalars
    and vectors of one dtype) are read as one row of elements, source 0 first, and element ``j`` of the
    result is element ``indices[j]`` of that row; a scalar when there is one index. It slices, concatenates,
    reorders and broadcasts the per-thread registers of a tile without computing anything.

    >>> from tilevm.dtypes import float16
    >>> from tilevm.ir.expr import Var
    >>> halves = Var("h", VectorType(float16, 4))
    >>> str(Gather((halves, Var("s", ScalarType(float16))), (4, 0, 1, 4)).result_type())
    'vector<float16, 4>'
    """

    sources: tuple[Expr, ...]
    indices: tuple[int, ...]
    opname = "gather"

    @property
    def type(self) -> ScalarType | VectorType:
        dtype = self.sources[0].type.dtype
        return ScalarType(dtype) if len(self.indices) == 1 else VectorType(dtype, len(self.indices))

    def result_type(self) -> ScalarType | VectorType:
        if not self.sources or not self.indices:
            raise IRTypeError("gather needs at least one source and one index")
        dtype = None
        available = 0
        for position, source in enumerate(self.sources):
            source_type = source.type
            if not isinstance(source_type, ScalarType | VectorType):
                raise IRTypeError(
                    f"gather's source {position} must be a scalar or vector, got {describe(source_type)}"
                )
            if dtype is not None and source_type.dtype != dtype:
                raise IRTypeError(f"gather's source {position} holds {source_type.dtype}, source 0 {dtype}")
            dtype = source_type.dtype
            available += source_type.length if isinstance(source_type, VectorType) else 1
        for index in self.indices:
            if not 0 <= index < available:
                raise IRTypeError(f"gather's index {index} is outside its {available} source elements")
        return self.type

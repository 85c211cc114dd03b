"""Thread IR's warpgroup instructions (sm_90a): ``wgmma.mma_async`` on shared-memory operands named by matrix
descriptors (A may instead be in registers), its fence, commit and wait, and the async-proxy fence that
orders ordinary shared-memory writes before ``wgmma`` reads them. The PTX ISA defines them (section
"Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions": ``wgmma.mma_async``, ``wgmma.fence``,
``wgmma.commit_group``, ``wgmma.wait_group``; "Parallel Synchronization and Communication Instructions":
``fence.proxy.async``).

A *warpgroup* is four consecutive warps whose first warp index is a multiple of four (threads 128 g to
128 g + 127); ``wgmma`` and its fence, commit and wait run on all 128 threads of a warpgroup together.

**Matrix descriptors** (ISA "Matrix Descriptor Format", 9.7.15.5.1.2.2; CUTLASS's ``GmmaDescriptor``): a
64-bit value, bits 0-13 ``encode(start address)``, 16-29 ``encode(leading dimension byte offset)``, 32-45
``encode(stride dimension byte offset)``, 49-51 the base offset, 62-63 the swizzle mode (0 none, 1 128-byte,
2 64-byte, 3 32-byte), where ``encode(x) = (x & 0x3FFFF) >> 4``: byte values in 16-byte units, addresses of
the shared state space (``SharedAddress``) modulo 256 KiB. The base offset is 0 when each swizzle pattern
starts at a multiple of 8 W bytes (1024, 512, 256 for W = 128, 64, 32), which this IR requires.

**K-major operands of 16-bit elements** (``imm-trans`` 0; ISA "Shared Memory Matrix Layout", canonical
layouts, 9.7.15.5.1.2.1.3, with T = 8 elements of 16 bytes): the operand is R rows (64 for A, n for B) of
16 values of k (32 bytes). With a swizzle of W bytes, ``Swizzle<log2(W/16), 4, 3> o ((8,m),(T,2)):((W/2,
SBO/2),(1,T))`` in elements: row r, value k lies at ``start + (r // 8) SBO + (r % 8) W + 2 k``, and the
swizzle XORs bits [4, 4 + log2(W / 16)) of that shared address with its bits [7, 7 + log2(W / 16)); the
leading byte offset is not used (the ISA assumes 1, CUTLASS writes 16 bytes). The start may move by 32
bytes along a row of 64 or 128 bytes to address its next 16 values of k. Without swizzle, 8x8 core
matrices of 16-byte rows, ``((8,m),(T,2)):((T,SBO/2),(1,LBO/2))``: row r, value k at ``start + (r // 8) SBO
+ (k // 8) LBO + (r % 8) 16 + 2 (k % 8)``.

**Accumulator registers** (ISA "Matrix Fragments for wgmma.mma_async.m64nNk16", Figure 149; CUTLASS's
``CLayout_64xN``): register i of the thread of lane l in warp w (``i = 4 j + r``) holds D's element at row
``16 (w % 4) + l // 4 + 8 (r // 2)``, column ``8 j + 2 (l % 4) + r % 2``.

**A in registers** (ISA "Matrix Fragments for wgmma.mma_async.m64nNk16", Figure 148; CUTLASS's
``ALayout_64x16``, which is its ``CLayout_64x16``): four ``.f16x2`` registers a thread, elements a0 .. a7 low
to high. Warp ``w % 4`` of the warpgroup holds rows ``16 (w % 4)`` to ``16 (w % 4) + 15``, as ``mma.sync``
m16n8k16 holds its A (``tilevm.layout``'s ``mma_fragments("m16n8k16", "f16").a``): with ``g = l // 4``,
``t = l % 4``, element e (0 the low half) of register r is at row ``16 (w % 4) + g + 8 (r % 2)``, column
``2 t + e + 8 (r // 2)``. PTX has no ``imm-trans-a`` for this form: A is K-major.

>>> hex(matrix_descriptor(start_bytes=0x400, leading_bytes=16, stride_bytes=1024, swizzle_bytes=128))
'0x4000004000010040'
>>> MatrixDescriptor.decode(0x4000004000010040)
MatrixDescriptor(start=1024, leading=16, stride=1024, base_offset=0, swizzle=128)
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType, bfloat16, float16, float32, uint64
from tilevm.ir.expr import BinaryExpr, CastExpr, Const, Expr, IRTypeError, Var
from tilevm.ir.inst import Instruction, describe
from tilevm.ir.thread.values import register_bits
from tilevm.ir.types import ScalarType, VectorType

__all__ = [
    "A_REGISTERS",
    "HELD_BITS",
    "SWIZZLE_MODES",
    "WARPGROUP_SIZE",
    "WGMMA_DTYPES",
    "FenceProxyAsync",
    "MatrixDescriptor",
    "Wgmma",
    "WgmmaCommitGroup",
    "WgmmaFence",
    "WgmmaWaitGroup",
    "matrix_descriptor",
    "matrix_descriptor_expr",
]

#: threads of a warpgroup, which run wgmma together
WARPGROUP_SIZE = 128
#: the operand dtypes of wgmma with float32 accumulators that this IR has (both operands alike)
WGMMA_DTYPES = (float16, bfloat16)
#: the registers of a thread's A fragment (two 16-bit values each: 8 of the warpgroup's 64 x 16)
A_REGISTERS = 4
#: the widths of the registers that ``wgmma_wait_group`` may hold: those one inline PTX operand takes
HELD_BITS = (16, 32, 64)
#: the descriptor's swizzle mode (bits 62-63) of each swizzle width in bytes; 0 bytes is no swizzle
SWIZZLE_MODES = {0: 0, 128: 1, 64: 2, 32: 3}

#: ``matrix-descriptor-encode``'s mask: 18 bits of bytes, 14 bits once shifted by 4
_ADDRESS_MASK = 0x3FFFF
_FIELD_MASK = 0x3FFF


def _encode(value: int) -> int:
    return (value & _ADDRESS_MASK) >> 4


def matrix_descriptor(start_bytes: int, leading_bytes: int, stride_bytes: int, swizzle_bytes: int) -> int:
    """The 64-bit wgmma matrix descriptor (see the module) of a K-major operand at shared address
    ``start_bytes``, with the leading and stride dimension byte offsets, swizzled over ``swizzle_bytes``
    (128, 64, 32, or 0 for none) and a base offset of 0. Byte values must be multiples of 16.

    >>> hex(matrix_descriptor(start_bytes=0, leading_bytes=128, stride_bytes=256, swizzle_bytes=0))
    '0x1000080000'
    """
    if swizzle_bytes not in SWIZZLE_MODES:
        raise ValueError(
            f"a wgmma swizzle is {', '.join(map(str, SWIZZLE_MODES))} bytes, got {swizzle_bytes}"
        )
    for name, value in (("start", start_bytes), ("leading", leading_bytes), ("stride", stride_bytes)):
        if value % 16 or not 0 <= value <= _ADDRESS_MASK:
            raise ValueError(f"a descriptor's {name} is a multiple of 16 bytes below 256 KiB, got {value}")
    return (
        _encode(start_bytes)
        | _encode(leading_bytes) << 16
        | _encode(stride_bytes) << 32
        | SWIZZLE_MODES[swizzle_bytes] << 62
    )


def matrix_descriptor_expr(start: Expr, leading_bytes: int, stride_bytes: int, swizzle_bytes: int) -> Expr:
    """``matrix_descriptor`` as a uint64 expression of a start address known at run time: ``start`` is a
    32-bit integer shared address (``SharedAddress`` of the operand's pointer), the rest constants.

    >>> from tilevm.dtypes import uint32
    >>> start = Var("start", ScalarType(uint32))
    >>> str(matrix_descriptor_expr(start, 16, 1024, 128).type)
    'uint64'
    """
    constant = matrix_descriptor(0, leading_bytes, stride_bytes, swizzle_bytes)
    address = BinaryExpr("and", CastExpr(start, uint64), Const(_ADDRESS_MASK, uint64))
    encoded = BinaryExpr("shr", address, Const(4, uint64))
    return BinaryExpr("or", encoded, Const(constant, uint64))


@dataclass(frozen=True)
class MatrixDescriptor:
    """A decoded matrix descriptor: the start address and the two byte offsets in bytes, the base offset
    (bits 49-51), and the swizzle width in bytes (0 for none)."""

    start: int
    leading: int
    stride: int
    base_offset: int
    swizzle: int

    @staticmethod
    def decode(bits: int) -> MatrixDescriptor:
        mode = bits >> 62 & 3
        return MatrixDescriptor(
            start=(bits & _FIELD_MASK) << 4,
            leading=(bits >> 16 & _FIELD_MASK) << 4,
            stride=(bits >> 32 & _FIELD_MASK) << 4,
            base_offset=bits >> 49 & 7,
            swizzle=next(width for width, code in SWIZZLE_MODES.items() if code == mode),
        )


def _expect_descriptor(value: Expr, name: str) -> None:
    if value.type != ScalarType(uint64):
        raise IRTypeError(f"wgmma's {name} is a uint64 matrix descriptor, got {describe(value.type)}")


def _expect_fragment(registers: tuple[Expr, ...], dtype: DType) -> None:
    expected = VectorType(dtype, 2)
    actual = [describe(value.type) for value in registers]
    if len(registers) != A_REGISTERS or any(value.type != expected for value in registers):
        raise IRTypeError(
            f"wgmma's a in registers is {A_REGISTERS} {expected} registers (the thread's A fragment), "
            f"got [{', '.join(actual)}]"
        )


@dataclass(frozen=True, eq=False, kw_only=True)
class Wgmma(Instruction):
    """``D = A @ B + C`` by one warpgroup (PTX ``wgmma.mma_async.sync.aligned.m64n<n>k16.f32.<t>.<t> d,
    a-desc, b-desc, 1, 1, 1, 0, 0``: accumulate, scales 1, both operands K-major): A is 64 x 16 and B 16 x
    ``n``, of ``dtype`` (float16 or bfloat16), in shared memory as the descriptors ``a`` and ``b`` (uint64,
    the same in every thread of the warpgroup) say; B's descriptor describes B transposed, n rows of 16
    values of k. ``c`` and ``outputs`` are the thread's n / 2 float32 accumulator registers, in the order
    of the module's docstring. ``n`` is a multiple of 8 from 8 to 256.

    ``a`` may instead be the thread's A fragment, four ``vector<dtype, 2>`` registers in the order of the
    module's docstring (PTX ``... d, {a0, a1, a2, a3}, b-desc, 1, 1, 1, 0``: the register form has no
    ``imm-trans-a``): what a kernel computed in registers (a dequantized or rescaled operand) multiplies
    without a round trip through shared memory.

    The instruction is asynchronous: its operands' shared memory may be written, and its ``outputs`` read,
    only after a ``WgmmaCommitGroup`` and a ``WgmmaWaitGroup`` that waits for it, through the wait's outputs;
    until then they go only to the ``c`` of further wgmma. Registers of A are read asynchronously too: the
    wait names them in its ``held`` so that they keep their registers until then. ``WgmmaFence`` must come
    before the first wgmma and whenever the accumulator or A registers were written otherwise since."""

    outputs: tuple[Var, ...]
    n: int
    dtype: DType
    a: Expr | tuple[Expr, ...]
    b: Expr
    c: tuple[Expr, ...]
    opname = "wgmma"
    defined_fields = ("outputs",)

    def result_type(self) -> tuple[ScalarType, ...]:
        if self.n % 8 or not 8 <= self.n <= 256:
            raise IRTypeError(f"wgmma's n is a multiple of 8 from 8 to 256, got {self.n}")
        if self.dtype not in WGMMA_DTYPES:
            raise IRTypeError(f"wgmma multiplies float16 or bfloat16, not {self.dtype}")
        if self.a_in_registers:
            _expect_fragment(self.a, self.dtype)
        else:
            _expect_descriptor(self.a, "a")
        _expect_descriptor(self.b, "b")
        accumulators = (ScalarType(float32),) * (self.n // 2)
        actual = tuple(value.type for value in self.c)
        if actual != accumulators:
            raise IRTypeError(
                f"wgmma m64n{self.n}k16's c is {self.n // 2} float32 registers, "
                f"got [{', '.join(describe(value_type) for value_type in actual)}]"
            )
        return accumulators

    @property
    def a_in_registers(self) -> bool:
        """Whether ``a`` is the thread's A fragment (registers) rather than a shared-memory descriptor."""
        return isinstance(self.a, tuple)


@dataclass(frozen=True, eq=False, kw_only=True)
class WgmmaFence(Instruction):
    """Order the warpgroup's earlier register and shared-memory accesses before the wgmma that follow (PTX
    ``wgmma.fence.sync.aligned``): needed before the first wgmma, and after the accumulators or the A
    registers were written by other instructions."""

    opname = "wgmma_fence"


@dataclass(frozen=True, eq=False, kw_only=True)
class WgmmaCommitGroup(Instruction):
    """Close the warpgroup's open group of wgmma (PTX ``wgmma.commit_group.sync.aligned``)."""

    opname = "wgmma_commit_group"


@dataclass(frozen=True, eq=False, kw_only=True)
class WgmmaWaitGroup(Instruction):
    """Wait until at most ``pending`` of the warpgroup's committed wgmma groups are still running (PTX
    ``wgmma.wait_group.sync.aligned N``). ``accumulators`` are float32 registers that those wgmma write;
    ``outputs`` are the same values, and only these may be read after the wait (reading a register that a
    wgmma still writes is undefined in PTX): the data dependence keeps a compiler from moving a read of an
    accumulator above the wait, as CUTLASS's ``warpgroup_fence_operand`` does.

    ``held`` are registers that those wgmma read (their A fragments; a 16, 32 or 64-bit scalar or vector
    each): the wgmma reads them any time before the wait, so code generation uses them once more after it,
    which keeps a compiler from changing them or reusing their registers in between (PTX: modifying them
    before the wait is undefined)."""

    outputs: tuple[Var, ...] = ()
    pending: int
    accumulators: tuple[Expr, ...] = ()
    held: tuple[Expr, ...] = ()
    opname = "wgmma_wait_group"
    defined_fields = ("outputs",)

    def result_type(self) -> tuple[ScalarType, ...]:
        if self.pending < 0:
            raise IRTypeError(f"wgmma.wait_group's pending count is 0 or more, got {self.pending}")
        for position, value in enumerate(self.accumulators):
            if value.type != ScalarType(float32):
                raise IRTypeError(
                    f"wgmma_wait_group's accumulator {position} is a float32 register, "
                    f"got {describe(value.type)}"
                )
        for position, value in enumerate(self.held):
            if register_bits(value.type) not in HELD_BITS:
                raise IRTypeError(
                    f"wgmma_wait_group's held register {position} is a 16, 32 or 64-bit scalar or vector, "
                    f"got {describe(value.type)}"
                )
        return (ScalarType(float32),) * len(self.accumulators)


@dataclass(frozen=True, eq=False, kw_only=True)
class FenceProxyAsync(Instruction):
    """Order the thread's earlier shared-memory accesses through the generic proxy (stores, completed
    ``cp.async``) before later accesses through the async proxy, such as wgmma's operand reads (PTX
    ``fence.proxy.async.shared::cta``, ISA "Memory Consistency Model", "Proxies"). A barrier must still
    order the writes of other threads."""

    opname = "fence_proxy_async"

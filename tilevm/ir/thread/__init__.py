"""Thread IR: the per-thread instruction set that lowering produces from Tile IR and the SIMT interpreter and
code generation run. Each thread holds scalar, short-vector and pointer registers (``ScalarType``,
``VectorType``, ``PointerType`` with its ``AddressSpace``), reads its indices (``thread_index()``,
``lane_index()``, ``warp_index()``, Tile IR's ``block_index(axis)``), and runs the PTX-like instructions
of ``tilevm.ir.thread.memory``, ``tilevm.ir.thread.compute`` and ``tilevm.ir.thread.warpgroup`` (sm_90a's
``wgmma``).

Thread IR reuses Tile IR's scalar expressions and its structured statements (``for``, ``while``, ``if``,
``let``, ``declare``, ``set``), run by each thread on its own values, and the text form, the round-trip
check and the verifier, which take ``THREAD_IR`` as their instruction set.

>>> from tilevm.ir import parse, print_program, verify
>>> text = '''kernel copy(%x: ptr<float16>) num_threads=32 {
...   %v: vector<float16, 8> = load(pointer=pointer_add(%x, thread_index() * 16), width=16)
...   store(pointer=shared_pointer<float16>(thread_index() * 16), value=%v)
... }'''
>>> print_program(verify(parse(text, THREAD_IR), THREAD_IR), THREAD_IR) == text
True
"""

from tilevm.ir.expr import BinaryExpr, BlockIndex, CastExpr, Const, GridSize, UnaryExpr, Var
from tilevm.ir.instruction_set import InstructionSet
from tilevm.ir.stmt import AssignScalar, DeclareScalar, For, If, LetScalar, While
from tilevm.ir.thread.compute import ConvertPack, ConvertUnpack, Lop3, Mma, Prmt, Shuffle, Trap
from tilevm.ir.thread.memory import (
    Atomic,
    Barrier,
    CopyAsyncCommitGroup,
    CopyAsyncGroup,
    CopyAsyncWaitGroup,
    Fence,
    Ldmatrix,
    Load,
    Store,
)
from tilevm.ir.thread.values import (
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
from tilevm.ir.thread.warpgroup import FenceProxyAsync, Wgmma, WgmmaCommitGroup, WgmmaFence, WgmmaWaitGroup

THREAD_IR = InstructionSet(
    "thread",
    instructions=(
        Load, Store, CopyAsyncGroup, CopyAsyncCommitGroup, CopyAsyncWaitGroup, Barrier, Fence, Atomic,
        Ldmatrix, Mma, Shuffle, Lop3, Prmt, ConvertPack, ConvertUnpack, Trap,
        Wgmma, WgmmaFence, WgmmaCommitGroup, WgmmaWaitGroup, FenceProxyAsync,
        LetScalar, DeclareScalar, AssignScalar, For, While, If,
    ),
    expressions=(
        Var, Const, BlockIndex, GridSize, UnaryExpr, BinaryExpr, CastExpr,
        ThreadIndex, LaneIndex, WarpIndex, SharedPointer, SharedAddress, PointerAdd, PointerCast, Element,
        Pack, Bitcast, Select, Gather,
    ),
)  # fmt: skip

__all__ = [
    "THREAD_IR",
    "Atomic",
    "Barrier",
    "Bitcast",
    "ConvertPack",
    "ConvertUnpack",
    "CopyAsyncCommitGroup",
    "CopyAsyncGroup",
    "CopyAsyncWaitGroup",
    "Element",
    "Fence",
    "FenceProxyAsync",
    "Gather",
    "LaneIndex",
    "Ldmatrix",
    "Load",
    "Lop3",
    "Mma",
    "Pack",
    "PointerAdd",
    "PointerCast",
    "Prmt",
    "Select",
    "SharedAddress",
    "SharedPointer",
    "Shuffle",
    "Store",
    "ThreadIndex",
    "Trap",
    "WarpIndex",
    "Wgmma",
    "WgmmaCommitGroup",
    "WgmmaFence",
    "WgmmaWaitGroup",
]

"""The fp16 matmul example's shared-memory traffic, read from its Thread IR.

The Thread IR must fill the staged tiles with 16-byte ``cp_async`` and read them with ``ldmatrix.x4``
(``.trans`` for B, whose rows are its k), on a swizzle with no bank conflicts. Beyond reading the text, the
addresses the lowered program computes are evaluated for every thread of the block (a small evaluator of
its integer ``let`` expressions, below), and the instructions are replayed by their PTX definitions:
``cp.async`` copies its ``source_size`` bytes and zero-fills the rest, ``ldmatrix`` hands lane ``l`` the
elements ``(l / 4, 2 (l % 4) + {0, 1})`` of each matrix whose rows the lanes addressed (transposed with
``.trans``). The copies must place every element of the global window (zeros outside the tensor) where the
Tile IR's shared layout puts it, the fragments must hold the elements their register layouts say, and
every warp request must be conflict-free by the bank model (``tilevm.layout.bank_conflicts``). And the
whole example runs through lowering and the SIMT interpreter bit for bit as the reference executor runs it.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from lowering import assert_same_bytes, run_both

from tilevm.dtypes import boolean
from tilevm.ir import For, LetScalar, LoadShared, SliceShared
from tilevm.ir.expr import BinaryExpr, BlockIndex, CastExpr, Const, Var
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.thread import (
    THREAD_IR,
    CopyAsyncGroup,
    Gather,
    Ldmatrix,
    PointerAdd,
    Select,
    SharedPointer,
    ThreadIndex,
)
from tilevm.ir.types import ScalarType
from tilevm.layout import bank_conflicts
from tilevm.passes.filecheck import filecheck
from tilevm.passes.lower.lowering import tile_layout

_EXAMPLE = Path(__file__).parents[1] / "examples" / "matmul_fp16.py"
_SPEC = importlib.util.spec_from_file_location("matmul_fp16", _EXAMPLE)
_MODULE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MODULE)
matmul = _MODULE.matmul

BLOCK = 32
M, N, K = 70, 96, 208  # ragged in M; K a multiple of 16 so that A's rows are 16-byte aligned


def arguments(generator=None):
    """A, B and C of the example; small integers when a generator is given, so that every sum is exact."""
    if generator is None:
        return torch.zeros(M, K).half(), torch.zeros(K, N).half(), torch.zeros(M, N).half()
    a = torch.randint(-3, 4, (M, K), generator=generator).half()
    b = torch.randint(-3, 4, (K, N), generator=generator).half()
    return a, b, torch.full((M, N), float("nan")).half()


SIZES = {"BM": BLOCK, "BN": BLOCK, "BK": BLOCK, "STAGES": 2}


def lowered_matmul():
    """The example's Tile IR (after the Tile IR passes) and its Thread IR."""
    return matmul.ir(*arguments(), **SIZES), matmul.thread_ir(*arguments(), **SIZES)


@pytest.fixture(scope="module")
def programs():
    return lowered_matmul()


def test_the_example_runs_through_lowering_bit_for_bit():
    a, b, c = arguments(torch.Generator().manual_seed(4))
    grid = (-(-M // BLOCK), -(-N // BLOCK))
    reference, lowered = run_both(matmul, grid, a, b, c, **SIZES)
    assert_same_bytes(reference, lowered)
    assert torch.equal(lowered[2], (a.double() @ b.double()).half())


def test_the_stages_are_filled_by_16_byte_cp_async_and_read_by_ldmatrix_x4(programs):
    _, thread_program = programs
    filecheck(
        str_of(thread_program),
        """
        CHECK: for %K
        CHECK: cp_async(destination=shared_pointer<float16>({{.*}}), source=pointer_add(%a, {{[^)]*}}),
        CHECK-SAME: size=16, source_size={{.*}}, cache="global")
        CHECK: cp_async(destination=shared_pointer<float16>({{.*}}), source=pointer_add(%b, {{[^)]*}}),
        CHECK-SAME: size=16, source_size={{.*}}, cache="global")
        CHECK-NEXT: cp_async_commit_group()
        CHECK-NEXT: cp_async_wait_group(pending=1)
        CHECK-NEXT: barrier()
        CHECK-NOT: load(pointer=shared_pointer
        CHECK: = ldmatrix(pointer=shared_pointer<float16>({{.*}}), count=4)
        CHECK: = ldmatrix(pointer=shared_pointer<float16>({{.*}}), count=4)
        CHECK: = ldmatrix(pointer=shared_pointer<float16>({{.*}}), count=4)
        CHECK: = ldmatrix(pointer=shared_pointer<float16>({{.*}}), count=4)
        CHECK: = ldmatrix(pointer=shared_pointer<float16>({{.*}}), count=4, transpose=true)
        CHECK-NOT: load(pointer=shared_pointer
        CHECK: barrier()
        CHECK-NEXT: }
        """,
    )


def str_of(program):
    from tilevm.ir import print_program

    return print_program(program, THREAD_IR)


def test_the_stage_tiles_are_swizzled(programs):
    tile_program, _ = programs
    layouts = [
        str(item.output.type.layout)
        for item in walk_instructions(tile_program.body)
        if hasattr(item, "offset")
    ]
    assert layouts == ["shared((2, 32, 32), strides=(1024, 32, 1)).swizzle(2, 3, 3)"] * 2


@pytest.mark.parametrize("k_tile", [0, 1])
@pytest.mark.parametrize("block", [(0, 0), (2, 2)])
def test_replayed_copies_place_the_global_window_and_ldmatrix_reads_the_fragments(programs, k_tile, block):
    tile_program, thread_program = programs
    rng = np.random.default_rng(7 + k_tile + block[0])
    codes = {"a": rng.integers(1, 1 << 15, (M, K)), "b": rng.integers(1, 1 << 15, (K, N))}
    shared = np.full(thread_program.shared_bytes // 2, -1, dtype=np.int64)  # one code per f16 slot
    lanes = Lanes(thread_program, block, {"a": (M, K), "b": (K, N), "c": (M, N)})
    loop = _loop(thread_program)
    steps = [lanes.run(thread_program.body)] + [lanes.iterate(loop, i) for i in range(k_tile + 1)]
    for copies, _ in steps:  # the prologue's copies, then each iteration's, up to k_tile's
        for tensor, destination, source, source_size, size in copies:
            _replay_copy(shared, codes[tensor], destination, source, source_size, size)
            for warp in range(4):
                assert _conflicts(destination[warp * 32 : warp * 32 + 32] // 2) == 0
    loads = [item for item in walk_instructions(tile_program.body) if isinstance(item, LoadShared)]
    fragments = steps[-1][1]
    assert [fragment[3] for fragment in fragments] == [4, 4]  # ldmatrix.x4 for both tiles
    for load, (rows, outputs, gather, count, transpose) in zip(loads, fragments, strict=True):
        tensor = _allocation_name(tile_program, load)[0]  # a_stages or b_stages
        layout, window = _stage(tile_program, load, tensor, k_tile, block, codes[tensor])
        assert (shared[layout] == window).all()  # the copies placed every element (zeros outside)
        assert transpose == (tensor == "b")
        values = _replay_ldmatrix(shared, rows, count, transpose)
        by_output = {output: values[:, index] for index, output in enumerate(outputs)}
        row = np.concatenate([by_output[source] for source in gather.sources], axis=1)
        register = tile_layout(load.output).table()
        assert (row[:, list(gather.indices)] == window[register[..., 0], register[..., 1]]).all()
        for warp in range(4):
            for instruction in range(rows.shape[1]):
                assert _conflicts(rows[warp * 32 : warp * 32 + 32, instruction] // 2) == 0


def _loop(program):
    return next(item for item in program.body if isinstance(item, For))


def _allocation_name(tile_program, load):
    views = {item.output: item for item in walk_instructions(tile_program.body) if hasattr(item, "output")}
    return views[views[load.tensor].tensor].output.name


# -- replaying the lowered program ---------------------------------------------------------------------


class Lanes:
    """The integer values of the lowered program's ``let``s, per thread of one block (``block``), and
    the addresses of its copies and ldmatrix loads."""

    def __init__(self, program, block, shapes):
        self.threads = np.arange(program.num_threads)
        self.block = block
        self.values = {}
        self.pointers = {}
        for param in program.params:
            tensor, _, field = param.variable.name.partition("_")
            if field.startswith("size"):
                self.values[param.variable] = shapes[tensor][int(field[4:])]
            elif field.startswith("stride"):
                self.values[param.variable] = shapes[tensor][1]  # contiguous: a row's stride is its length
            else:
                self.pointers[param.variable] = tensor

    def iterate(self, loop, iteration):
        """``run`` of the loop's body in iteration ``iteration``."""
        self.values[loop.variable] = iteration
        return self.run(loop.body)

    def run(self, body):
        """Evaluate ``body`` (a loop in it is skipped): its copies ``(tensor, destination bytes, source
        bytes, source_size, size)`` and its ldmatrix-loaded tiles ``(row byte addresses [threads,
        instructions], outputs, gather, count, transpose)``."""
        copies, fragments, pending = [], [], []
        for instruction in body:
            if isinstance(instruction, LetScalar) and isinstance(instruction.value, Gather):
                if pending and set(instruction.value.sources) <= {
                    o for load, _ in pending for o in load.outputs
                }:
                    rows = np.stack([address for _, address in pending], axis=1)
                    outputs = [output for load, _ in pending for output in load.outputs]
                    first = pending[0][0]
                    fragments.append((rows, outputs, instruction.value, first.count, first.transpose))
                    pending = []
            elif isinstance(instruction, LetScalar) and _is_integer(instruction.output):
                self.values[instruction.output] = self.value(instruction.value)
            elif isinstance(instruction, CopyAsyncGroup):
                tensor, source = self.value(instruction.source)
                destination, size = self.value(instruction.destination), self.value(instruction.source_size)
                copies.append((tensor, destination, source, size, instruction.size))
            elif isinstance(instruction, Ldmatrix):
                pending.append((instruction, self.value(instruction.pointer)))
        return copies, fragments

    def value(self, expression):
        if isinstance(expression, Const):
            return np.full(self.threads.shape, int(expression.value))
        if isinstance(expression, Var):
            return np.broadcast_to(self.values[expression], self.threads.shape)
        if isinstance(expression, ThreadIndex):
            return self.threads
        if isinstance(expression, BlockIndex):
            return np.full(self.threads.shape, self.block[expression.axis])
        if isinstance(expression, CastExpr):
            return self.value(expression.operand)
        if isinstance(expression, SharedPointer):
            return self.value(expression.offset)
        if isinstance(expression, PointerAdd):
            return self.pointers[expression.pointer], self.value(expression.offset)
        if isinstance(expression, Select):
            condition = self.value(expression.condition)
            return np.where(condition, self.value(expression.if_true), self.value(expression.if_false))
        if isinstance(expression, BinaryExpr):
            return _BINARY[expression.op](self.value(expression.lhs), self.value(expression.rhs))
        raise TypeError(f"no integer value for {expression}")


def _is_integer(variable):
    return isinstance(variable.type, ScalarType) and (
        variable.type.dtype.is_integer or variable.type.dtype == boolean
    )


_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "floordiv": np.floor_divide,
    "mod": np.mod,
    "and": np.bitwise_and,
    "or": np.bitwise_or,
    "xor": np.bitwise_xor,
    "shr": np.right_shift,
    "shl": np.left_shift,
    "min": np.minimum,
    "max": np.maximum,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
}


def _replay_copy(shared, codes, destination, source, source_size, size):
    """cp.async by its PTX definition: ``source_size`` bytes read, the rest of ``size`` zero-filled."""
    flat = codes.ravel()
    for thread in range(len(destination)):
        for element in range(size // 2):
            inside = 2 * element < source_size[thread]
            value = flat[source[thread] // 2 + element] if inside else 0
            shared[destination[thread] // 2 + element] = value


def _replay_ldmatrix(shared, rows, count, transpose):
    """ldmatrix by its PTX definition: ``[threads, instructions * count, 2]`` codes each lane receives."""
    threads, instructions = rows.shape
    values = np.zeros((threads, instructions * count, 2), dtype=np.int64)
    for warp_start in range(0, threads, 32):
        for instruction in range(instructions):
            for matrix in range(count):
                row_starts = rows[warp_start + 8 * matrix : warp_start + 8 * matrix + 8, instruction] // 2
                tile = shared[row_starts[:, None] + np.arange(8)]  # [row, column] of the 8x8 matrix
                if transpose:
                    tile = tile.T
                for lane in range(32):
                    pair = tile[lane // 4, 2 * (lane % 4) : 2 * (lane % 4) + 2]
                    values[warp_start + lane, instruction * count + matrix] = pair
    return values


def _stage(tile_program, load, tensor, k_tile, block, codes):
    """The element offsets of the stage a load reads (its slice's layout, placed at its allocation and
    base) and the codes the global window there holds: zeros outside the tensor."""
    slice_ = next(
        item
        for item in walk_instructions(tile_program.body)
        if isinstance(item, SliceShared) and item.output is load.tensor
    )
    allocation = next(
        item
        for item in walk_instructions(tile_program.body)
        if getattr(item, "output", None) is slice_.tensor
    )
    stage = k_tile % 2
    layout = allocation.output.type.layout.shifted_by(allocation.offset // 2)
    offsets = layout.table()[stage]
    rows = np.arange(BLOCK)[:, None] + (block[0] * BLOCK if tensor == "a" else k_tile * BLOCK)
    cols = np.arange(BLOCK)[None, :] + (k_tile * BLOCK if tensor == "a" else block[1] * BLOCK)
    inside = (rows < codes.shape[0]) & (cols < codes.shape[1])
    window = np.where(
        inside, codes[np.minimum(rows, codes.shape[0] - 1), np.minimum(cols, codes.shape[1] - 1)], 0
    )
    return offsets, window


class _Rows:
    def __init__(self, rows):
        self.rows = rows

    def table(self):
        return self.rows


def _conflicts(first_elements):
    """Bank conflicts of one warp's 16-byte accesses that start at these f16 element offsets."""
    rows = first_elements[:, None] + np.arange(8)
    return bank_conflicts(_Rows(rows), 16, [(lane, 0) for lane in range(len(rows))], 16)

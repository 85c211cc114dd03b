"""Lowering of ``reduce``, read in the Thread IR: a thread's own elements first, then a shuffle xor per lane
bit of the reduced dim, then shared scratch between barriers for the warps; 16-bit values shuffled in pairs,
64-bit ones as two words; ``local_groups`` against the layouts' tables."""

import numpy as np
import pytest
from layout_assignment import random_layout
from test_lower_dot import printed

from tilevm import ir
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.thread import THREAD_IR, Barrier, Shuffle
from tilevm.passes.filecheck import filecheck
from tilevm.passes.infer_layouts import infer_layouts
from tilevm.passes.lower import lower_to_threads
from tilevm.passes.lower.reductions import local_groups


def lowered_reduce(operand: str, shape: list[int], layout: str, op: str, dtype: str, dim: int) -> ir.Program:
    """The Thread IR of a reduction of a register tile made in ``layout`` (lowered without dead-code
    elimination)."""
    reduced = [size for position, size in enumerate(shape) if position != dim] or [1]
    text = f"""kernel k() num_threads=128 {{
  %x: register<{operand}, {shape}, {layout}> = alloc_register(dtype={operand}, shape={shape})
  %r: register<{dtype}, {reduced}> = reduce(operand=%x, op="{op}", dtype={dtype}, dim={dim})
}}"""
    return ir.verify(lower_to_threads(ir.verify(infer_layouts(ir.parse(text)))), THREAD_IR)


def instructions(program: ir.Program, cls: type) -> list:
    return [instruction for instruction in walk_instructions(program.body) if isinstance(instruction, cls)]


def test_a_sum_over_rows_adds_locals_then_the_lane_bit_then_the_four_warps():
    # rows are local(4) inside a thread, then 8 threads 16 lanes apart: lane bit 16 inside the warp, and the
    # upper 4 of the 8 across the 4 warps (threads 32 apart)
    program = lowered_reduce("float32", [32, 16], "spatial(8, 16).local(4, 1)", "sum", "float32", 0)
    filecheck(
        printed(program),
        """
        CHECK: %S1: float32 = let(value=gather([%x], [0]) + gather([%x], [1]))
        CHECK-NEXT: %S2: float32 = let(value=%S1 + gather([%x], [2]))
        CHECK-NEXT: %S3: float32 = let(value=%S2 + gather([%x], [3]))
        CHECK-NEXT: %M: float32 = shuffle(mode="xor", value=%S3, lane=16)
        CHECK-NEXT: %S4: float32 = let(value=%S3 + %M)
        CHECK-NEXT: barrier()
        CHECK-NEXT: store(pointer=shared_pointer<float32>(%tid * 4), value=%S4)
        CHECK-NEXT: barrier()
        CHECK-NEXT: %FIRST: int32 = let(value=%tid - (((%tid // 32) % 4) * 32))
        CHECK-NEXT: %P0: float32 = load(pointer=shared_pointer<float32>(%FIRST * 4), width=4)
        CHECK-NEXT: %P1: float32 = load(pointer=shared_pointer<float32>((%FIRST + 32) * 4), width=4)
        CHECK-NEXT: %T1: float32 = let(value=%P0 + %P1)
        CHECK-NEXT: %P2: float32 = load(pointer=shared_pointer<float32>((%FIRST + 64) * 4), width=4)
        CHECK-NEXT: %T2: float32 = let(value=%T1 + %P2)
        CHECK-NEXT: %P3: float32 = load(pointer=shared_pointer<float32>((%FIRST + 96) * 4), width=4)
        CHECK-NEXT: float32 = let(value=%T2 + %P3)
        CHECK-NOT: shuffle
        """,
    )
    assert program.shared_bytes == 128 * 4


def test_a_maximum_within_a_warp_takes_five_shuffles_of_float16_pairs_and_no_barrier():
    # columns: 2 local, then 32 lanes; 4 rows a warp's threads do not share
    program = lowered_reduce("float16", [4, 64], "spatial(4, 32).local(1, 2)", "max", "float16", 1)
    filecheck(
        printed(program),
        """
        CHECK: %M0: float16 = let(value=max(gather([%x], [0]), gather([%x], [1])))
        CHECK-NEXT: %W: vector<float16, 2> = shuffle(mode="xor", value=gather([%M0], [0, 0]), lane=1)
        CHECK-NEXT: %M1: float16 = let(value=max(%M0, gather([%W], [0])))
        CHECK-NEXT: shuffle(mode="xor", value=gather([%M1], [0, 0]), lane=2)
        CHECK: lane=4)
        CHECK: lane=8)
        CHECK: lane=16)
        """,
    )
    assert len(instructions(program, Shuffle)) == 5 and not instructions(program, Barrier)


def test_64_bit_values_cross_lanes_as_two_32_bit_words():
    program = lowered_reduce("int64", [64], "replicated(4).spatial(32).local(2)", "sum", "int64", 0)
    filecheck(
        printed(program),
        """
        CHECK: %S: int64 = let(value=gather([%x], [0]) + gather([%x], [1]))
        CHECK-NEXT: %W: vector<uint32, 2> = let(value=bitcast<uint32, 2>(%S))
        CHECK-NEXT: %LO: uint32 = shuffle(mode="xor", value=gather([%W], [0]), lane=1)
        CHECK-NEXT: %HI: uint32 = shuffle(mode="xor", value=gather([%W], [1]), lane=1)
        CHECK-NEXT: %V: int64 = let(value=bitcast<int64, 1>(pack([%LO, %HI])))
        CHECK-NEXT: int64 = let(value=%S + %V)
        """,
    )


def test_a_low_bit_maximum_is_computed_widened_and_narrowed_back():
    program = lowered_reduce("int3", [4, 8], "local(4, 8).replicated(128)", "max", "int3", 0)
    filecheck(
        printed(program),
        """
        CHECK: %M1: vector<int32, 8> = let(value=max(gather([%W], [0, 1, 2, 3, 4, 5, 6, 7]),
        CHECK-SAME: gather([%W], [8, 9,
        CHECK-NEXT: %M2: vector<int32, 8> = let(value=max(%M1,
        CHECK-NEXT: %M3: vector<int32, 8> = let(value=max(%M2,
        CHECK: vector<int3, 8> = let(
        CHECK-NOT: shuffle
        """,
    )


@pytest.mark.parametrize("seed", range(8))
def test_local_groups_collect_the_elements_that_differ_only_along_the_dim(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 4))
    shape = tuple(int(size) for size in rng.choice([1, 2, 3, 4, 6, 8], size=rank))
    dim, keepdim = int(rng.integers(rank)), bool(rng.integers(2))
    layout = random_layout(shape, 32, rng)
    result = layout.reduce(dim, keepdim=keepdim or rank == 1)
    groups = local_groups(layout, result, dim)
    operand_table, result_table = layout.table(), result.table()
    assert sorted(index for group in groups for index in group) == list(range(layout.local_size))
    for thread in range(32):
        for result_index, group in enumerate(groups):
            expected = result_table[thread, result_index].tolist()
            for index in group:
                coordinate = operand_table[thread, index].tolist()
                if result.rank == layout.rank:
                    coordinate[dim] = 0
                else:
                    del coordinate[dim]
                assert coordinate == expected

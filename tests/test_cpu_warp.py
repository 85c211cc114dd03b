"""ldmatrix and shfl.sync in the SIMT interpreter, checked against the PTX ISA's definitions written out
here (ldmatrix: lane l gets elements (l // 4, 2 (l % 4) + j) of each matrix; shuffles: CUDA's __shfl_*_sync
on segments of ``width`` lanes), and the errors of a warp with only some of its lanes active."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cpu_programs import assert_error_at, run
from tilevm.layout.ldmatrix import ldmatrix_layout


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("transpose", [False, True])
def test_ldmatrix_gives_each_lane_its_fragment_of_each_matrix(count, transpose):
    # 64 threads store 128 rows of 8 halves to shared memory; each warp's lanes then name the rows of its
    # matrices in a scrambled order (lane 8 i + r gives row r of matrix i, stored at row perm[...]).
    rng = np.random.default_rng(20 + count + 10 * transpose)
    rows = rng.standard_normal((128, 8)).astype(np.float16)
    order = rng.permutation(64)  # the shared row that lane l of warp w names: w * 64 + order[l]
    params = "%x: ptr<float16>, %order: ptr<int32>, %out: ptr<float16>"
    text = (
        f"""kernel k({params}) num_threads=64 shared_bytes=2048 {{
  %t: int32 = let(value=thread_index())
  %pair: vector<float16, 8> = load(pointer=pointer_add(%x, %t * 32), width=16)
  store(pointer=shared_pointer<float16>(%t * 32), value=%pair)
  %second: vector<float16, 8> = load(pointer=pointer_add(%x, (%t * 32) + 16), width=16)
  store(pointer=shared_pointer<float16>((%t * 32) + 16), value=%second)
  barrier()
  %named: int32 = load(pointer=pointer_add(%order, (lane_index() % 32) * 4), width=4)
  %row: ptr<float16, shared> = let(value=shared_pointer<float16>(((warp_index() * 64) + %named) * 16))
  {", ".join(f"%m{i}: vector<float16, 2>" for i in range(count))} = ldmatrix(pointer=%row, count={count}, \
transpose={str(transpose).lower()})
"""
        + "".join(
            f"  store(pointer=pointer_add(%out, ((%t * {count}) + {i}) * 4), value=%m{i})\n"
            for i in range(count)
        )
        + "}"
    )
    out = torch.full((64, count, 2), float("nan"), dtype=torch.float16)
    run(text, [torch.from_numpy(rows), torch.from_numpy(order.astype(np.int32)), out])
    expected = np.zeros((2, 32, count, 2), dtype=np.float16)
    for warp in range(2):
        for i in range(count):
            matrix = rows[warp * 64 + order[8 * i : 8 * i + 8]]  # row r named by lane 8 i + r
            if transpose:
                matrix = matrix.T
            for lane in range(32):
                expected[warp, lane, i] = matrix[lane // 4, 2 * (lane % 4) : 2 * (lane % 4) + 2]
    assert np.array_equal(out.numpy().reshape(2, 32, count, 2), expected)


def _cuda_shuffle(values, mode, operand, width):
    """CUDA's __shfl_{sync,up,down,xor}_sync on one warp, lane by lane."""
    result = values.copy()
    for lane in range(32):
        start = lane - lane % width
        b = int(operand[lane]) & 31
        if mode == "idx":
            source = start + b % width
        elif mode == "up":
            source = lane - b if lane - b >= start else lane
        elif mode == "down":
            source = lane + b if lane + b < start + width else lane
        else:  # xor: a lane may read earlier segments but not later ones
            source = lane ^ b if (lane ^ b) < start + width else lane
        result[lane] = values[source]
    return result


@pytest.mark.parametrize("mode", ["idx", "up", "down", "xor"])
@pytest.mark.parametrize("width", [32, 8, 2])
def test_shuffles_read_the_lane_cuda_defines(mode, width):
    rng = np.random.default_rng(hash((mode, width)) % 2**32)
    words = rng.integers(0, 2**32, size=96, dtype=np.uint64).astype(np.uint32)
    operands = rng.integers(-40, 40, size=96).astype(np.int32)
    text = f"""kernel k(%x: ptr<uint32>, %lanes: ptr<int32>, %out: ptr<uint32>) num_threads=96 {{
  %t: int32 = let(value=thread_index())
  %v: vector<float16, 2> = let(value=bitcast<float16, 2>(load_placeholder))
  %lane: int32 = load(pointer=pointer_add(%lanes, %t * 4), width=4)
  %moved: vector<float16, 2> = shuffle(mode="{mode}", value=%v, lane=%lane, width={width})
  store(pointer=pointer_add(%out, %t * 4), value=bitcast<uint32, 1>(%moved))
}}"""
    text = text.replace("  %v: vector<float16, 2> = let(value=bitcast<float16, 2>(load_placeholder))",
                        "  %w: uint32 = load(pointer=pointer_add(%x, %t * 4), width=4)\n"
                        "  %v: vector<float16, 2> = let(value=bitcast<float16, 2>(%w))")  # fmt: skip
    out = torch.zeros(96, dtype=torch.int32)
    run(text, [torch.from_numpy(words.view(np.int32)), torch.from_numpy(operands), out])
    expected = np.concatenate(
        [
            _cuda_shuffle(words[w * 32 : w * 32 + 32], mode, operands[w * 32 : w * 32 + 32], width)
            for w in range(3)
        ]
    )
    assert np.array_equal(out.numpy().view(np.uint32), expected)


PARTIAL = """kernel k(%x: ptr<float32>) num_threads=64 shared_bytes=1024 {
  %t: int32 = let(value=thread_index())
  %v: float32 = let(value=cast<float32>(%t))
  if %t < {limit} {{
    {instruction}
  }}
}"""


@pytest.mark.parametrize(
    "instruction",
    [
        '%s: float32 = shuffle(mode="xor", value=%v, lane=1)',
        "%m: vector<float16, 2> = ldmatrix(pointer=shared_pointer<float16>((%t % 32) * 16), count=4)",
    ],
)
def test_a_collective_with_some_lanes_of_a_warp_inactive_is_an_error(instruction):
    text = (
        PARTIAL.replace("{limit}", "48")
        .replace("{instruction}", instruction)
        .replace("{{", "{")
        .replace("}}", "}")
    )
    text = text.replace("count=4)", "count=1)")
    assert_error_at(text, [torch.zeros(4)], 5, r"with 16 of the 32 lanes of the warp of thread 32 .* active")


def test_a_collective_in_a_branch_that_whole_warps_take_runs():
    # Warp 1 alone (threads 32 to 63) shuffles; warp 0 skips it: no error, and warp 1's values rotate.
    out = torch.full((64,), -1.0)
    text = """kernel k(%x: ptr<float32>) num_threads=64 {
  %t: int32 = let(value=thread_index())
  %v: float32 = declare(init=cast<float32>(%t))
  if %t >= 32 {
    %s: float32 = shuffle(mode="down", value=%v, lane=1)
    set(variable=%v, value=%s)
  }
  store(pointer=pointer_add(%x, %t * 4), value=%v)
}"""
    run(text, [out])
    assert out.tolist() == [*range(32), *range(33, 64), 63]


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("transpose", [False, True])
def test_ldmatrix_agrees_with_tilevm_layouts_fragment(count, transpose):
    # The interpreter reads the ISA; tilevm.layout's ldmatrix_layout was derived from it separately: lane
    # 8 j + r naming row r of matrix j (rows 8 j + r of a stacked tile), register j of each lane holds the
    # tile's elements at the layout's slots 2 j and 2 j + 1.
    tile = np.random.default_rng(count + 3 * transpose).standard_normal((8 * count, 8)).astype(np.float16)
    text = (
        f"""kernel k(%x: ptr<float16>, %out: ptr<float16>) num_threads=32 shared_bytes={16 * 8 * count} {{
  %t: int32 = let(value=thread_index())
  %first: vector<float16, 8> = load(pointer=pointer_add(%x, (%t % {8 * count}) * 16), width=16)
  store(pointer=shared_pointer<float16>((%t % {8 * count}) * 16), value=%first, predicate=%t < {8 * count})
  barrier()
  {", ".join(f"%m{j}: vector<float16, 2>" for j in range(count))} = ldmatrix(\
pointer=shared_pointer<float16>((%t % {8 * count}) * 16), count={count}, transpose={str(transpose).lower()})
"""
        + "".join(
            f"  store(pointer=pointer_add(%out, ((%t * {count}) + {j}) * 4), value=%m{j})\n"
            for j in range(count)
        )
        + "}"
    )
    out = torch.full((32, count, 2), float("nan"), dtype=torch.float16)
    run(text, [torch.from_numpy(tile), out])
    table = ldmatrix_layout(count, trans=transpose).table()  # [lane, slot, (row, column)]
    expected = tile[table[..., 0], table[..., 1]].reshape(32, count, 2)
    assert np.array_equal(out.numpy(), expected)

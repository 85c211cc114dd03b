"""Casts that read their fields through a gather: the codes of each pair stored as twins (the same bits of the
two 16-bit halves of a 32-bit word, as the quantized GEMM's pre-layout stores 1-, 2- and 4-bit weights),
put side by side by a ``permute`` before the cast (``tilevm.passes.lower.cast_sources`` and the twin path
of ``cast_packed``).

Every code in every slot, as ``test_lower_casts_slots`` does for codes side by side: row ``r`` holds code
``(r + s) % N`` in (logical) slot ``s``, outputs start as poison and every element is compared bit for bit
with the reference codec's cast; the conftest assembles each kernel's PTX with ptxas for sm_80 and sm_90.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.dtypes import int_type, pack, unpack
from tilevm.ir import semantics
from tilevm.layout import local, spatial
from tilevm.passes.lower.cast_placement import fewest_shifts
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cast_instructions
from test_lower_casts_slots import HALVES, LANES, slot_codes

#: the widths that divide 16, signed and unsigned, and the float formats of 4 and 8 bits
CODES = ["int1", "uint1", "int2", "uint2", "int4", "uint4", "float4_e2m1", "int8", "uint8", "float8_e5m2"]


def run_twins(name: str, target: str, device: str) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """The logical codes of every row and slot, what the codec's cast makes of them, and ``cast_twins``'s
    output on ``device``: the bytes hold slot ``(a, f, h)`` of a row at ``(a, h, f)`` (``F`` codes a
    half), the twins that the kernel's permute puts back side by side."""
    code, half = tv.dtype(name), HALVES[target]
    nbytes, count = cast_instructions.chunk(code.nbits)
    per_half = 16 // code.nbits
    codes = slot_codes(code, count)
    rows = len(codes)
    stored = codes.reshape(rows, -1, per_half, 2).transpose(0, 1, 3, 2).reshape(rows, count)
    packed = torch.from_numpy(np.stack([pack(row.astype(np.uint64), code) for row in stored]))
    out = torch.full((rows, 2 * count), 0xAB, dtype=torch.uint8).view(half)
    packed, out = packed.to(device), out.to(device)
    cast_instructions.cast_twins[(rows // LANES,)](packed, out, CODE=code, NBYTES=nbytes, COUNT=count)
    target_dtype = tv.dtype(target)
    carrier = semantics.cast(codes_to_carrier(codes.astype(np.uint64), code), code, target_dtype, "nearest")
    return codes, carrier_to_codes(carrier, target_dtype).astype(np.uint64), out.cpu()


@pytest.mark.parametrize("target", HALVES)
@pytest.mark.parametrize("name", CODES)
def test_every_code_in_every_slot_of_twins(name: str, target: str):
    codes, expected, out = run_twins(name, target, "cpu")
    rows, count = codes.shape
    actual = unpack(out.view(torch.uint8).numpy().reshape(-1), int_type(16, signed=False), rows * count)
    actual = actual.reshape(rows, count).astype(np.uint64)
    wrong = np.argwhere(actual != expected)
    assert not len(wrong), (
        f"{name} -> {target}: {len(wrong)} elements differ, first in slot {wrong[0][1]}: code "
        f"{codes[tuple(wrong[0])]} gave {int(actual[tuple(wrong[0])]):#06x}, expected "
        f"{int(expected[tuple(wrong[0])]):#06x}"
    )


@pytest.mark.gpu
@pytest.mark.parametrize("target", HALVES)
@pytest.mark.parametrize("name", CODES)
def test_every_code_in_every_slot_of_twins_on_the_gpu(name: str, target: str):
    _, expected, out = run_twins(name, target, "cuda")
    actual = out.float().numpy()
    wanted = tv.dtypes.decode(expected, tv.dtype(target))
    np.testing.assert_array_equal(actual, wanted)  # NaN where the codec gives NaN (the GPU's own NaN bits)


#: PTX instructions per code of the casts of twins (``cast_instructions.measure(..., twins=True)`` on
#: sm_90), at most: no prmt, one lop3 and one packed subtract (or the small floats' sequence) per pair, and
#: a few shifts per word (int1: three, for four magic constants instead of eight)
MOST_PER_CODE = {
    ("int1", "float16"): 1.0938,
    ("int2", "float16"): 1.0625,
    ("int4", "float16"): 1.125,
    ("uint4", "float16"): 1.125,
    ("int1", "bfloat16"): 1.0938,
    ("int2", "bfloat16"): 1.125,
    ("int4", "bfloat16"): 1.375,
    ("float4_e2m1", "float16"): 2.375,
}


@pytest.mark.parametrize("pair", MOST_PER_CODE, ids=[f"{s}-{t}" for s, t in MOST_PER_CODE])
def test_twins_take_fewer_instructions_per_code(pair: tuple[str, str]):
    name, target = pair
    code = tv.dtype(name)
    twins = cast_instructions.measure(code, HALVES[target], twins=True)
    side_by_side = cast_instructions.measure(code, HALVES[target])
    assert all(number >= 0 for number in twins.values()), twins
    assert twins["prmt"] == 0, twins
    assert cast_instructions.per_code(code, twins) <= MOST_PER_CODE[pair], twins
    assert cast_instructions.per_code(code, twins) < cast_instructions.per_code(code, side_by_side)


#: right shifts per code of the twins of float4_e2m1, at most: one a word for float16 (the magnitudes of
#: the field at bits 12 to 15 of each half move down to bit 9), two for bfloat16 (bits 8 and 12 to bit 6);
#: the other shifts are left shifts, which ptxas may make multiplies (the FMA pipe, not the ALU pipe)
MOST_RIGHT_SHIFTS = {"float16": 1 / 8, "bfloat16": 2 / 8}


@pytest.mark.parametrize("target", MOST_RIGHT_SHIFTS)
def test_twin_small_floats_take_two_lop3_a_pair_and_few_right_shifts(target: str):
    """Each pair of float4_e2m1 twins: one lop3 for the magnitudes, one for the signs, one multiply, and
    no shift of its own (the side-by-side sequence shifts every pair's magnitudes down)."""
    code = tv.float4_e2m1
    twins = cast_instructions.measure(code, HALVES[target], twins=True)
    side_by_side = cast_instructions.measure(code, HALVES[target])
    pairs = cast_instructions.chunk(code.nbits)[1] // 2
    assert twins["prmt"] == 0 and twins["lop3"] == 2 * pairs and twins["mul"] == pairs, twins
    assert twins["shr"] / (2 * pairs) <= MOST_RIGHT_SHIFTS[target] < side_by_side["shr"] / (2 * pairs), twins


def _served_by_fewer(offsets: frozenset[int], lowest: int, highest: int, count: int) -> bool:
    """Whether some set of fewer than ``count`` nonzero shifts brings every offset to a position from
    ``lowest`` to ``highest`` (every such set tried)."""
    shifts = [shift for shift in range(-15, 16) if shift]
    return any(
        all(any(lowest <= offset - shift <= highest for shift in (0, *chosen)) for offset in offsets)
        for fewer in range(count)
        for chosen in itertools.combinations(shifts, fewer)
    )


@pytest.mark.parametrize("lowest, highest", [(0, 6), (0, 3), (0, 8), (12, 12), (9, 9), (2, 5), (0, 9)])
def test_fewest_shifts_is_the_fewest(lowest: int, highest: int):
    generator = np.random.default_rng(lowest * 16 + highest)
    cases = [frozenset(range(0, 16, 4)), frozenset(range(0, 16, 2)), frozenset(range(16))]
    cases += [frozenset(generator.choice(16, size=size, replace=False).tolist()) for size in (1, 3, 5)]
    for offsets in cases:
        picks = fewest_shifts(offsets, lowest, highest)
        assert set(picks) == offsets
        assert all(lowest <= offset - shift <= highest for offset, shift in picks.items())
        count = len(set(picks.values()) - {0})
        if count <= 4:  # a search of every smaller set of shifts is quick enough
            assert not _served_by_fewer(offsets, lowest, highest, count), sorted(offsets)


@tv.kernel(num_warps=1)
def cast_before_reload(packed: tv.Tensor, out: tv.Tensor, STEPS: tv.constexpr):
    """Each step casts the twins loaded in the step before, after the register that held them has been
    loaded again: the cast must read the codes as they were when permuted, not the register's new value."""
    layout = spatial(LANES, 1) * local(1, 16)
    current = tv.load_global(packed, offsets=[0, 0], shape=[LANES, 16], layout=layout)
    for step in range(STEPS):
        halves = tv.view(current, tv.int4, [LANES, 4, 2, 4])
        pairs = tv.view(tv.permute(halves, [0, 1, 3, 2]), tv.int4, [LANES, 32])
        pairs = tv.convert_layout(pairs, spatial(LANES, 1) * local(1, 32))
        current = tv.load_global(packed, offsets=[(step + 1) * LANES, 0], shape=[LANES, 16], layout=layout)
        tv.store_global(out, tv.cast(pairs, tv.float16), offsets=[step * LANES, 0])


def test_a_register_loaded_again_is_not_read_through():
    steps = 3
    generator = np.random.default_rng(7)
    codes = generator.integers(0, 16, size=((steps + 1) * LANES, 32))
    stored = codes.reshape(-1, 4, 4, 2).transpose(0, 1, 3, 2).reshape(len(codes), 32)
    packed = torch.from_numpy(np.stack([pack(row.astype(np.uint64), tv.int4) for row in stored]))
    out = torch.full((steps * LANES, 32), float("nan"), dtype=torch.float16)
    cast_before_reload[(1,)](packed, out, STEPS=steps)
    values = tv.dtypes.decode(codes[: steps * LANES].astype(np.uint64), tv.int4)
    np.testing.assert_array_equal(out.numpy(), values.astype(np.float16))

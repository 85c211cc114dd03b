"""Every code in every slot: the packed casts to float16 and bfloat16 as the quantized GEMM uses them (a
thread's codes viewed from its own 16-byte loads, one pre-layout chunk: ``128 / gcd(b, 128)`` codes), run by
the SIMT interpreter and compared bit for bit with the reference codec's cast.

The sequences place each pair of elements with its own masks and magic numbers, and may share a prmt
between pairs, so a slot's correctness says nothing about another's: row ``r`` holds code ``(r + s) % N``
in slot ``s``, so that over ``N`` rows (N the number of codes) every slot sees every code, beside
neighbours that differ. Outputs start as poison (0xAB bytes) and every element is checked.
``benchmarks/cast_instructions.py`` counts these casts' PTX instructions; the test at the end keeps the
counts of the common pairs from growing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.dtypes import DType, int_type, pack, unpack
from tilevm.ir import semantics
from tilevm.layout import local, spatial
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cast_instructions

LANES = cast_instructions.LANES
#: every signed width (an unsigned one places its fields as the signed one of its width does, only the
#: constants differ: three of them stand for the rest), and the float formats of the quantized GEMM
CODES = [
    *(f"int{bits}" for bits in range(1, 9)),
    "uint2", "uint4", "uint8",
    "float4_e2m1", "float6_e3m2", "float8_e4m3", "float8_e5m2",
]  # fmt: skip
HALVES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@tv.kernel(num_warps=1)
def cast_rows(
    packed: tv.Tensor, out: tv.Tensor, CODE: tv.constexpr, NBYTES: tv.constexpr, COUNT: tv.constexpr
):
    """Block ``i`` casts rows ``32 i ..``: each lane the ``COUNT`` codes of its row's ``NBYTES`` bytes."""
    row = tv.block_idx(0) * LANES
    window = tv.load_global(
        packed, offsets=[row, 0], shape=[LANES, NBYTES], layout=spatial(LANES, 1) * local(1, NBYTES)
    )
    tv.store_global(out, tv.cast(tv.view(window, CODE, [LANES, COUNT]), out.dtype), offsets=[row, 0])


def slot_codes(code: DType, count: int) -> np.ndarray:
    """[rows, count]: code ``(row + slot) % N``, rows a whole number of blocks, at least N."""
    rows = -(-code.num_codes // LANES) * LANES
    return (np.arange(rows)[:, None] + np.arange(count)[None, :]) % code.num_codes


def run_rows(name: str, target: str, device: str) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """The codes of every row and slot, what the codec's cast makes of them (target codes), and the
    kernel's output run on ``device``."""
    code, half = tv.dtype(name), HALVES[target]
    nbytes, count = cast_instructions.chunk(code.nbits)
    codes = slot_codes(code, count)
    rows = len(codes)
    packed = torch.from_numpy(np.stack([pack(row.astype(np.uint64), code) for row in codes]))
    assert packed.shape == (rows, nbytes)
    out = torch.full((rows, 2 * count), 0xAB, dtype=torch.uint8).view(half)
    packed, out = packed.to(device), out.to(device)
    cast_rows[(rows // LANES,)](packed, out, CODE=code, NBYTES=nbytes, COUNT=count)
    target_dtype = tv.dtype(target)
    carrier = semantics.cast(codes_to_carrier(codes.astype(np.uint64), code), code, target_dtype, "nearest")
    return codes, carrier_to_codes(carrier, target_dtype).astype(np.uint64), out.cpu()


@pytest.mark.parametrize("target", HALVES)
@pytest.mark.parametrize("name", CODES)
def test_every_code_in_every_slot(name: str, target: str):
    codes, expected, out = run_rows(name, target, "cpu")
    rows, count = codes.shape
    raw = int_type(16, signed=False)
    actual = unpack(out.view(torch.uint8).numpy().reshape(-1), raw, rows * count).reshape(rows, count)
    wrong = np.argwhere(actual.astype(np.uint64) != expected)
    assert not len(wrong), (
        f"{name} -> {target}: {len(wrong)} elements differ, first in slot {wrong[0][1]}: code "
        f"{codes[tuple(wrong[0])]} gave {int(actual[tuple(wrong[0])]):#06x}, expected "
        f"{int(expected[tuple(wrong[0])]):#06x}"
    )


@pytest.mark.gpu
@pytest.mark.parametrize("target", HALVES)
@pytest.mark.parametrize("name", CODES)
def test_every_code_in_every_slot_on_the_gpu(name: str, target: str):
    """The same on the GPU (sm_89 and later: float8 through ``cvt_unpack``), every value equal to the
    codec's, NaN for NaN (the GPU's NaN bits are its own)."""
    _, expected, out = run_rows(name, target, "cuda")
    actual = out.float().numpy()
    wanted = tv.dtypes.decode(expected, tv.dtype(target))
    assert np.array_equal(np.isnan(actual), np.isnan(wanted))
    assert np.array_equal(actual[~np.isnan(actual)], wanted[~np.isnan(wanted)])


#: PTX instructions per code of the casts the quantized GEMM uses most (``benchmarks/cast_instructions.py``
#: on sm_90), at most: the count of each pair after this table was last improved
MOST_PER_CODE = {
    ("int2", "float16"): 1.25,
    ("int4", "float16"): 1.5,
    ("int8", "float16"): 1.25,
    ("int2", "bfloat16"): 1.3125,
    ("int4", "bfloat16"): 1.625,
    ("float4_e2m1", "float16"): 2.625,
    ("float8_e4m3", "float16"): 0.75,
    ("float8_e4m3", "bfloat16"): 2.75,
}


@pytest.mark.parametrize("pair", MOST_PER_CODE, ids=[f"{s}-{t}" for s, t in MOST_PER_CODE])
def test_ptx_instructions_per_code(pair: tuple[str, str]):
    name, target = pair
    code = tv.dtype(name)
    counts = cast_instructions.measure(code, HALVES[target])
    assert all(number >= 0 for number in counts.values()), counts  # the copy's instructions are all there
    assert cast_instructions.per_code(code, counts) <= MOST_PER_CODE[pair], counts

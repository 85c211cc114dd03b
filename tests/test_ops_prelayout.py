"""The weight pre-layout of the quantized GEMM: ``pack`` against the spec's formulas written out element by
element, and ``unpack`` as its inverse, for every code width and ragged shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.ops.qgemm import prelayout

WIDTHS = range(1, 9)


def _random_codes(n: int, k: int, bits: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 1 << bits, (n, k), generator=generator, dtype=torch.uint8)


def _reference_pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """The spec, one code at a time: lane ``4 * g + t`` of the n-group ``gn`` and chunk ``c`` holds the
    element ``e`` of its mma A fragments of the PTX ISA's table for m16n8k16 (register ``e // 2 % 4``, half
    ``e % 2``: rows ``g`` then ``g + 8``, k ``2 t`` then ``2 t + 8``) of the k16 step ``e // 8``, at the true
    k of the permutation, as the code ``slot`` of its string (whose bit ``i`` is bit ``slot * bits + i``):
    for the widths 1, 2 and 4, the two halves of register ``p = e // 2`` are twins, at the same bits of the
    two 16-bit halves of a 32-bit word; the other widths store them side by side (``slot = e``)."""
    per_half = 16 // bits if bits in (1, 2, 4) else 1
    e_count = 128 // math.gcd(bits, 128)
    loads, kc = e_count * bits // 128, 2 * e_count
    n_size, k_size = codes.shape
    n_pad, k_pad = -(-n_size // 16) * 16, -(-k_size // kc) * kc
    packed = np.zeros((n_pad // 16, k_pad // kc, loads, 32, 16), dtype=np.uint8)
    for gn in range(n_pad // 16):
        for c in range(k_pad // kc):
            for lane in range(32):
                g, t = divmod(lane, 4)
                for e in range(e_count):
                    jj, register, half = e // 8, e // 2 % 4, e % 2
                    row, k_mma = g + 8 * (register % 2), 2 * t + half + 8 * (register // 2)  # the ISA's table
                    s1, s0 = k_mma // 8, k_mma % 2
                    n = 16 * gn + row
                    k = c * kc + 32 * (jj // 2) + 8 * t + 4 * (jj % 2) + 2 * s1 + s0
                    code = int(codes[n, k]) if n < n_size and k < k_size else 0
                    p = e // 2
                    slot = p // per_half * 2 * per_half + half * per_half + p % per_half
                    if per_half > 1:  # the two codes of a register 16 bits apart in one 32-bit word
                        assert (slot * bits) // 32 == (slot * bits + 16 * (1 - 2 * half)) // 32
                    for i in range(bits):
                        position = slot * bits + i
                        byte = position // 8
                        packed[gn, c, byte // 16, lane, byte % 16] |= ((code >> i) & 1) << (position % 8)
    return packed


@pytest.mark.parametrize("bits", WIDTHS)
def test_pack_matches_the_spec_formulas(bits: int) -> None:
    kc = prelayout.chunk_k(bits)
    for seed, (n, k) in enumerate([(8, kc), (13, kc + 37), (3, 2 * kc - 1)]):
        codes = _random_codes(n, k, bits, seed=100 * bits + seed)
        packed = prelayout.pack(codes, bits)
        expected = _reference_pack(codes.numpy(), bits)
        assert packed.dtype == torch.uint8 and packed.is_contiguous()
        np.testing.assert_array_equal(packed.numpy(), expected)


@pytest.mark.parametrize("bits", WIDTHS)
def test_unpack_inverts_pack(bits: int) -> None:
    kc = prelayout.chunk_k(bits)
    for seed, (n, k) in enumerate([(1, 1), (17, 3 * kc + 5), (40, kc), (9, 100)]):
        codes = _random_codes(n, k, bits, seed=1000 * bits + seed)
        packed = prelayout.pack(codes, bits)
        assert torch.equal(prelayout.unpack(packed, bits, n, k), codes)


def test_chunk_geometry() -> None:
    assert [prelayout.twins_per_half(bits) for bits in WIDTHS] == [16, 8, 1, 4, 1, 1, 1, 1]
    assert [prelayout.chunk_k(bits) for bits in WIDTHS] == [256, 128, 256, 64, 256, 128, 256, 32]
    assert [prelayout.loads_per_chunk(bits) for bits in WIDTHS] == [1, 1, 3, 1, 5, 3, 7, 1]
    assert [prelayout.codes_per_thread(bits) for bits in WIDTHS] == [128, 64, 128, 32, 128, 64, 128, 16]


def test_errors_name_the_argument() -> None:
    codes = torch.zeros(4, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="bits"):
        prelayout.pack(codes, 9)
    with pytest.raises(ValueError, match="codes must be a uint8"):
        prelayout.pack(codes.to(torch.int32), 4)
    with pytest.raises(ValueError, match="below 2\\*\\*bits"):
        prelayout.pack(codes + 16, 4)
    with pytest.raises(ValueError, match="at least one row"):
        prelayout.pack(codes[:0], 4)
    with pytest.raises(ValueError, match="packed must be a uint8 tensor of shape"):
        prelayout.unpack(prelayout.pack(codes, 4), 4, 4, 200)


@pytest.mark.gpu
@pytest.mark.parametrize("compute", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("code", [tv.int1, tv.uint1, tv.int2, tv.int4, tv.uint4, tv.float4_e2m1], ids=str)
def test_the_kernel_reads_twins_on_the_gpu(code: tv.DType, compute: torch.dtype) -> None:
    """The quantized GEMM on weights whose codes the pre-layout stores as twins, at a decode shape and with
    the default configuration, against the float64 reference of ``test_ops_qgemm`` (the twin sequences on
    the hardware, both compute dtypes)."""
    from test_ops_qgemm import check, make_inputs, run_qgemm

    scale_kind = "e8m0" if code == tv.float4_e2m1 else "compute"
    group = 32 if code == tv.float4_e2m1 else 128
    n, k = 4096, 4096
    inputs = make_inputs(
        code, compute, scale_kind, group, 16, n, k, bias=False, seed=k + code.nbits, device="cuda"
    )
    for m in (1, 16):
        rows = {**inputs, "x": inputs["x"][:m]}
        check(rows, run_qgemm(rows, code, group, None))

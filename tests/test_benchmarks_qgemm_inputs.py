"""The quantized GEMM benchmarks' shared inputs (``benchmarks/qgemm_inputs.py``): the packed codes unpack to
codes whose values (the dtype codec's) times their group's scale are the float32 weight given beside
them, for integer and float codes; a command line's widths name dtypes; and a configuration's fields
change from text as Python literals."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.dtypes import decode
from tilevm.ops.qgemm import QGemmConfig, prelayout

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
from qgemm_inputs import code_dtype, random_weight, with_fields


@pytest.mark.parametrize(
    ("width", "n", "k", "group"),
    [("2", 40, 256, 128), ("3", 33, 512, 64), ("7", 17, 256, 32), ("float6_e3m2", 24, 256, 64),
     ("float8_e4m3", 20, 512, 128)],
)  # fmt: skip
def test_the_weight_is_the_packed_codes_times_their_scales(width, n, k, group):
    code = code_dtype(width)
    generator = torch.Generator().manual_seed(code.nbits * 100 + n)
    packed, scales, weight = random_weight(n, k, code, group, generator)
    codes = prelayout.unpack(packed, code.nbits, n, k).numpy()
    values = decode(codes, code).astype(np.float64)
    expected = values * np.repeat(scales.double().numpy().T, group, axis=1)
    assert scales.shape == (k // group, n) and scales.dtype == torch.float16
    finite = np.isfinite(decode(np.arange(1 << code.nbits), code))
    # every finite code occurs (the weight is not degenerate), and no other
    assert set(np.unique(codes)) == set(np.flatnonzero(finite))
    np.testing.assert_allclose(weight.double().numpy(), expected, rtol=2**-24, atol=0)


def test_a_width_names_an_integer_and_a_name_any_dtype():
    assert (code_dtype("4"), code_dtype("float6_e3m2")) == (tv.int4, tv.float6_e3m2)


def test_fields_change_from_text_as_literals():
    config = with_fields(QGemmConfig(), "chunks=2, max_registers=96, prefetch=False")
    assert (config.chunks, config.max_registers, config.prefetch) == (2, 96, False)
    assert with_fields(QGemmConfig(), "") == QGemmConfig()
    with pytest.raises(ValueError, match="max_registers must be between"):
        with_fields(QGemmConfig(), "max_registers=8")

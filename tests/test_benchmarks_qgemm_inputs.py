"""The quantized GEMM benchmarks' shared inputs (``benchmarks/qgemm_inputs.py``): the packed codes unpack to
codes whose values (the dtype codec's) times their group's scale are the float32 weight given beside
them; and a configuration's fields change from text as Python literals."""

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
from qgemm_inputs import random_weight, with_fields


@pytest.mark.parametrize(("bits", "n", "k", "group"), [(2, 40, 256, 128), (3, 33, 512, 64), (7, 17, 256, 32)])
def test_the_weight_is_the_packed_codes_times_their_scales(bits, n, k, group):
    generator = torch.Generator().manual_seed(bits * 100 + n)
    packed, scales, weight = random_weight(n, k, bits, group, generator)
    codes = prelayout.unpack(packed, bits, n, k).numpy()
    values = decode(codes, tv.int_type(bits, True)).astype(np.float64)
    expected = values * np.repeat(scales.double().numpy().T, group, axis=1)
    assert scales.shape == (k // group, n) and scales.dtype == torch.float16
    assert len(np.unique(codes)) == 1 << bits  # every code occurs: the weight is not degenerate
    np.testing.assert_allclose(weight.double().numpy(), expected, rtol=2**-24, atol=0)


def test_fields_change_from_text_as_literals():
    config = with_fields(QGemmConfig(), "chunks=2, max_registers=96, prefetch=False")
    assert (config.chunks, config.max_registers, config.prefetch) == (2, 96, False)
    assert with_fields(QGemmConfig(), "") == QGemmConfig()
    with pytest.raises(ValueError, match="max_registers must be between"):
        with_fields(QGemmConfig(), "max_registers=8")

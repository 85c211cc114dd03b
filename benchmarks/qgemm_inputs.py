"""The quantized GEMM benchmarks' shared inputs: a code dtype named on the command line, a random weight of
its codes with float16 scales per group, packed as the kernel reads it, beside the float32 weight it stands
for; and a configuration with fields changed from the command line."""

from __future__ import annotations

import ast
import dataclasses

import numpy as np
import torch

import tilevm as tv
from tilevm.ops.qgemm import prelayout


def code_dtype(width: str) -> tv.DType:
    """The code dtype of a ``--widths`` entry: ``4`` is int4, a name is that dtype (``float6_e3m2``)."""
    return tv.dtype(f"int{width}" if width.isdigit() else width)


def random_weight(
    n: int, k: int, code: tv.DType, group: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(packed, scales, weight)``: random codes of ``code`` (integers, or the finite codes of a float
    format) of an ``[n, k]`` weight, packed (``prelayout.pack``), float16 scales ``[k // group, n]`` of
    about one over the largest value, and the float32 weight ``value * scale``, on the generator's device."""
    device = generator.device
    table = tv.dtypes.decode(np.arange(1 << code.nbits), code).astype(np.float64)
    finite = torch.from_numpy(np.flatnonzero(np.isfinite(table))).to(device)
    codes = finite[torch.randint(0, len(finite), (n, k), generator=generator, device=device)].to(torch.uint8)
    values = torch.from_numpy(table).float().to(device)[codes.long()]
    largest = float(np.abs(table[np.isfinite(table)]).max())
    scales = (torch.rand(k // group, n, generator=generator, device=device) / largest + 1e-3).half()
    weight = (values.view(n, k // group, group) * scales.T[:, :, None].float()).view(n, k)
    return prelayout.pack(codes, code.nbits), scales, weight


def with_fields(config: object, text: str) -> object:
    """``config`` (a frozen dataclass) with the fields that ``text`` sets, ``"name=value, ..."`` with
    Python literals as values (``"chunks=2, max_registers=96"``)."""
    pairs = (item.split("=", 1) for item in text.replace(" ", "").split(",") if item)
    return dataclasses.replace(config, **{name: ast.literal_eval(value) for name, value in pairs})

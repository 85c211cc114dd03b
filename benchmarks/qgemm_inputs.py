"""The quantized GEMM benchmarks' shared inputs: a random weight of signed codes with float16 scales per
group, packed as the kernel reads it, beside the float32 weight it stands for; and a configuration with
fields changed from the command line."""

from __future__ import annotations

import ast
import dataclasses

import torch

from tilevm.ops.qgemm import prelayout


def random_weight(
    n: int, k: int, bits: int, group: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(packed, scales, weight)``: random ``bits``-bit two's-complement codes of an ``[n, k]`` weight,
    packed (``prelayout.pack``), float16 scales ``[k // group, n]`` of about one over the code range, and
    the float32 weight ``code * scale``, on the generator's device."""
    device = generator.device
    codes = torch.randint(0, 1 << bits, (n, k), generator=generator, device=device, dtype=torch.uint8)
    scales = (torch.rand(k // group, n, generator=generator, device=device) / (1 << bits) + 1e-3).half()
    values = codes.int() - ((codes.int() >> (bits - 1)) << bits)  # two's complement
    weight = (values.view(n, k // group, group) * scales.T[:, :, None].float()).view(n, k)
    return prelayout.pack(codes, bits), scales, weight


def with_fields(config: object, text: str) -> object:
    """``config`` (a frozen dataclass) with the fields that ``text`` sets, ``"name=value, ..."`` with
    Python literals as values (``"chunks=2, max_registers=96"``)."""
    pairs = (item.split("=", 1) for item in text.replace(" ", "").split(",") if item)
    return dataclasses.replace(config, **{name: ast.literal_eval(value) for name, value in pairs})

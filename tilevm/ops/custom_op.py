"""The quantized GEMM registered as a torch custom op, ``torch.ops.tilevm.quantized_matmul``, so that
``torch.compile`` traces through it (no graph break: the op is one node of the graph, whose output shape and
dtype its fake implementation gives) and CUDA graphs capture it like any torch op.

The op's arguments are the weight's tensors and its format as plain strings and integers (a custom op takes
no dataclass)::

    quantized_matmul(Tensor x, Tensor packed, Tensor scales, Tensor? zeros, Tensor? global_scale,
                     Tensor? bias, str code_dtype, int group_size, str scale_dtype,
                     int out_features, int in_features) -> Tensor

It is defined with ``torch.library.define`` and one implementation for every device (``"default"``: torch's
CompositeExplicitAutograd), with a fake implementation for tracing: an eager call goes from torch's
dispatcher straight to ``_quantized_matmul`` (``torch.library.custom_op`` wraps the implementation in layers
of Python, for autograd and dynamo, that cost about 12 µs a call). The op has no derivative: autograd
falls through it (``torch.library.fallthrough_kernel``), so its output does not require grad and no gradient
flows back through it, as with ``quantized_matmul`` itself (``QuantizedLinear``'s eager forward).

``quantized_matmul_op(x, qweight, bias)`` calls it with a ``QuantizedWeight``.

>>> torch.ops.tilevm.quantized_matmul.default._schema.arguments[6].name
'code_dtype'
"""

from __future__ import annotations

import functools

import torch

from tilevm.ops.qgemm.matmul import quantized_matmul_once
from tilevm.ops.quantization import QuantizedWeight, WeightFormat

__all__ = ["format_arguments", "quantized_matmul_op", "weight_from_tensors"]


def format_arguments(qweight: QuantizedWeight) -> tuple[str, int, str, int, int]:
    """The op's plain arguments for ``qweight``: code dtype, group size, scale dtype, out and in features."""
    out_features, in_features = qweight.shape
    weight_format = qweight.format
    return (
        weight_format.dtype.name,
        weight_format.group_size,
        weight_format.scale_dtype.name,
        out_features,
        in_features,
    )


def weight_from_tensors(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    global_scale: torch.Tensor | None,
    code_dtype: str,
    group_size: int,
    scale_dtype: str,
    out_features: int,
    in_features: int,
    compute_dtype: torch.dtype,
) -> QuantizedWeight:
    """The ``QuantizedWeight`` that the op's plain arguments describe (its constructor checks the tensors
    against the format)."""
    weight_format = _format(
        code_dtype,
        group_size,
        scale_dtype,
        zeros is not None,
        global_scale is not None,
        in_features,
        compute_dtype,
    )
    return QuantizedWeight(
        format=weight_format,
        shape=(out_features, in_features),
        packed=packed,
        scales=scales,
        zeros=zeros,
        global_scale=global_scale,
        compute_dtype=compute_dtype,
    )


@functools.lru_cache(maxsize=256)
def _format(
    code_dtype: str,
    group_size: int,
    scale_dtype: str,
    has_zeros: bool,
    has_global_scale: bool,
    in_features: int,
    compute_dtype: torch.dtype,
) -> WeightFormat:
    """The resolved format (cached: the op rebuilds its weight on every call). One group per output channel
    is asked for as ``None``, which the constructor takes for any K."""
    requested = WeightFormat(
        code_dtype,
        None if group_size == in_features else group_size,
        scale_dtype,
        has_zeros,
        has_global_scale,
    )
    return requested.resolve(in_features, compute_dtype)


torch.library.define(
    "tilevm::quantized_matmul",
    "(Tensor x, Tensor packed, Tensor scales, Tensor? zeros, Tensor? global_scale, Tensor? bias, "
    "str code_dtype, int group_size, str scale_dtype, int out_features, int in_features) -> Tensor",
)


_LIBRARY = torch.library.Library("tilevm", "IMPL")
_LIBRARY.impl("quantized_matmul", torch.library.fallthrough_kernel, "Autograd")


@torch.library.impl("tilevm::quantized_matmul", "default")
def _quantized_matmul(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    global_scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    code_dtype: str,
    group_size: int,
    scale_dtype: str,
    out_features: int,
    in_features: int,
) -> torch.Tensor:
    """``x @ dequantize(W).T + bias`` for the weight these arguments describe (see the module's docstring)."""
    weight = weight_from_tensors(
        packed,
        scales,
        zeros,
        global_scale,
        code_dtype,
        group_size,
        scale_dtype,
        out_features,
        in_features,
        x.dtype,
    )
    return quantized_matmul_once(x, weight, bias)


@torch.library.register_fake("tilevm::quantized_matmul")
def _quantized_matmul_fake(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    global_scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    code_dtype: str,
    group_size: int,
    scale_dtype: str,
    out_features: int,
    in_features: int,
) -> torch.Tensor:
    """The output's shape and dtype: ``x``'s leading dimensions, ``out_features``, ``x``'s dtype."""
    torch._check(
        x.shape[-1] == in_features,
        lambda: f"tilevm::quantized_matmul: x has {x.shape[-1]} features, the weight {in_features}",
    )
    return x.new_empty((*x.shape[:-1], out_features))


def quantized_matmul_op(
    x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``tilevm.ops.quantized_matmul(x, qweight, bias)`` through the custom op: what to call in code that
    ``torch.compile`` traces."""
    tensors = (qweight.packed, qweight.scales, qweight.zeros, qweight.global_scale, bias)
    return torch.ops.tilevm.quantized_matmul(x, *tensors, *format_arguments(qweight))

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

``quantized_matmul_op(x, qweight, bias)`` calls it with a ``QuantizedWeight``, through the op's overload
(``.default``: the packet's overload resolution costs as much as the dispatcher's call).

The op gets tensors, not a weight: it finds the weight they come from among the registered ones
(``register``: ``quantized_matmul_op`` registers its weight, ``QuantizedLinear`` the weight over its
buffers), by its ``packed`` tensor, and uses it, and so the launches that it keeps (``host_cache``), when all
of its tensors are the op's (the same objects) and its format is the op's. Otherwise (tensors of no
registered weight: a weight made for this call, checked as every weight is) it launches through a launch
made for the call. The registry holds weights weakly: a weight goes when its owner drops it.

>>> torch.ops.tilevm.quantized_matmul.default._schema.arguments[6].name
'code_dtype'
"""

from __future__ import annotations

import functools
import weakref

import torch

from tilevm.ops.qgemm.matmul import quantized_matmul, quantized_matmul_once
from tilevm.ops.quantization import QuantizedWeight, WeightFormat

__all__ = ["OP", "format_arguments", "quantized_matmul_op", "register", "registered", "weight_from_tensors"]

#: the op's plain arguments after the tensors: code dtype, group size, scale dtype, out and in features
Plain = tuple[str, int, str, int, int]
#: the registered weights by the id of their ``packed`` tensor: a weak reference and the plain arguments
#: (``register``); an entry goes with its weight
_WEIGHTS: dict[int, tuple[weakref.ref, Plain]] = {}


def format_arguments(qweight: QuantizedWeight) -> Plain:
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


def register(qweight: QuantizedWeight) -> Plain:
    """Let the op find ``qweight`` from its tensors while it lives (see the module's docstring); returns
    its plain arguments."""
    key = id(qweight.packed)
    entry = _WEIGHTS.get(key)
    if entry is None or entry[0]() is not qweight:
        entry = _WEIGHTS[key] = (
            weakref.ref(qweight, functools.partial(_forget, key)),
            format_arguments(qweight),
        )
    return entry[1]


def _forget(key: int, reference: weakref.ref) -> None:
    """A registered weight has gone: its entry goes, unless another weight's has replaced it."""
    if _WEIGHTS.get(key, (None,))[0] is reference:
        _WEIGHTS.pop(key, None)


def registered(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    global_scale: torch.Tensor | None,
    plain: Plain,
    compute_dtype: torch.dtype,
) -> QuantizedWeight | None:
    """The registered weight of exactly these tensors (the same objects), plain arguments and compute
    dtype, or None."""
    entry = _WEIGHTS.get(id(packed))
    if entry is None or entry[1] != plain:
        return None
    weight = entry[0]()
    if (
        weight is None
        or weight.packed is not packed
        or weight.scales is not scales
        or weight.zeros is not zeros
        or weight.global_scale is not global_scale
        or weight.compute_dtype != compute_dtype
    ):
        return None
    return weight


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


#: the op's overload, called directly (``torch.ops.tilevm.quantized_matmul`` resolves it at every call)
OP = torch.ops.tilevm.quantized_matmul.default
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
    plain = (code_dtype, group_size, scale_dtype, out_features, in_features)
    weight = registered(packed, scales, zeros, global_scale, plain, x.dtype)
    if weight is not None:
        return quantized_matmul(x, weight, bias)
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
    ``torch.compile`` traces. In eager mode the op finds ``qweight`` and its launches (``register``)."""
    plain = format_arguments(qweight) if torch.compiler.is_compiling() else register(qweight)
    tensors = (qweight.packed, qweight.scales, qweight.zeros, qweight.global_scale, bias)
    return OP(x, *tensors, *plain)

"""``QuantizedLinear``, a drop-in for ``nn.Linear`` whose weight is quantized (any format of
``tilevm.ops.quantize_weight``), and ``quantize_model``, which replaces a model's ``nn.Linear`` layers by it
in place.

The weight's tensors are buffers, named as in ``QuantizedWeight.state_dict`` (``packed``, ``scales``, and
``zeros``, ``global_scale`` where the format has them, and ``header``, the format as JSON bytes), plus
``bias``: ``state_dict``/``load_state_dict``, ``torch.save`` and safetensors carry them, ``.to(device)``
moves them, and ``load_state_dict`` refuses a checkpoint of another format (``from_state_dict`` builds the
layer from one). Their dtypes are part of the format: a dtype conversion of the model
(``model.half()``) moves them but leaves their dtypes as they are. The forward pass is the custom op
``torch.ops.tilevm.quantized_matmul``, so ``torch.compile`` traces the layer without a graph break; in eager
mode it calls ``quantized_matmul`` directly (one dispatch less per call). Either way the launches are those
that the layer's ``QuantizedWeight`` keeps: the layer keeps the weight over its buffers, registered with the
op (``custom_op.register``), made again at once after a move (``.to``, ``.cuda``) and on first use after a
buffer was replaced (until then a compiled graph's op launches as for a weight it does not know).

>>> layer = QuantizedLinear.from_linear(nn.Linear(64, 8), tv.int4, group_size=32)
>>> layer
QuantizedLinear(in_features=64, out_features=8, dtype=int4, group_size=32, scale_dtype=float16, bias=True, compute_dtype=float16)
"""  # noqa: E501  (a repr is one line)

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import torch
from torch import nn

import tilevm as tv
from tilevm.ops.custom_op import OP, format_arguments, register, weight_from_tensors
from tilevm.ops.qgemm import quantized_matmul
from tilevm.ops.quantization import QuantizedWeight, quantize_weight

__all__ = ["QuantizedLinear", "quantize_model"]

#: the buffers that hold a QuantizedWeight's tensors, by the field's name
_WEIGHT_BUFFERS = ("packed", "scales", "zeros", "global_scale")


class QuantizedLinear(nn.Module):
    """``y = x @ W.T + bias`` for ``x`` of shape ``[..., in_features]`` in the weight's compute dtype, with
    ``W`` the quantized weight ``qweight`` (``[out_features, in_features]``)."""

    def __init__(self, qweight: QuantizedWeight, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        if bias is not None and tuple(bias.shape) != (self.out_features,):
            raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({self.out_features},)")
        self.format = qweight.format
        self.compute_dtype = qweight.compute_dtype
        for name in _WEIGHT_BUFFERS:
            self.register_buffer(name, getattr(qweight, name))
        self.register_buffer("header", qweight.state_dict()["header"])
        self.register_buffer("bias", None if bias is None else bias.detach().to(qweight.compute_dtype))
        #: the custom op's plain arguments after the tensors (see ``tilevm.ops.custom_op``)
        self._format_arguments = format_arguments(qweight)
        #: the QuantizedWeight over the current buffers (``qweight`` itself: they are its tensors), made
        #: again on first use after a buffer was replaced
        self._weight: QuantizedWeight | None = qweight
        register(qweight)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, dtype: tv.DType, group_size: int = 128, **quantize_kwargs: object
    ) -> QuantizedLinear:
        """``linear`` with its weight quantized to ``dtype`` in groups of ``group_size`` along the input
        features (``quantize_weight(linear.weight, dtype, group_size, **quantize_kwargs)``); its bias kept."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, not {type(linear).__name__}")
        with torch.no_grad():
            qweight = quantize_weight(linear.weight.detach(), dtype, group_size=group_size, **quantize_kwargs)
        return cls(qweight, linear.bias)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], prefix: str = "") -> QuantizedLinear:
        """The layer whose ``state_dict()`` (keys under ``prefix``) is ``state``: no float weight needed."""
        tensors = {key: value for key, value in state.items() if key.startswith(prefix)}
        bias = tensors.pop(prefix + "bias", None)
        return cls(QuantizedWeight.from_state_dict(tensors, prefix), bias)

    @property
    def qweight(self) -> QuantizedWeight:
        """The layer's weight as a ``QuantizedWeight`` over its current buffers."""
        weight = self._weight
        return self._make_weight() if weight is None else weight

    def _make_weight(self) -> QuantizedWeight:
        """The weight over the current buffers, kept and registered with the op (``custom_op.register``)."""
        buffers = (self._buffers[name] for name in _WEIGHT_BUFFERS)
        weight = weight_from_tensors(*buffers, *self._format_arguments, self.compute_dtype)
        register(weight)
        self._weight = weight
        return weight

    def __setstate__(self, state: dict) -> None:
        """As ``nn.Module``'s (unpickling, ``copy.deepcopy``), and the weight registered with the op."""
        super().__setstate__(state)
        if self._weight is not None:
            register(self._weight)

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name in _WEIGHT_BUFFERS:  # a buffer replaced (load_state_dict(assign=True), or by hand)
            self._weight = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + bias``, ``x`` of shape ``[..., in_features]``."""
        if torch.compiler.is_compiling():
            tensors = (self.packed, self.scales, self.zeros, self.global_scale, self.bias)
            return OP(x, *tensors, *self._format_arguments)
        weight = self._weight
        return quantized_matmul(x, self._make_weight() if weight is None else weight, self._buffers["bias"])

    def extra_repr(self) -> str:
        weight_format = self.format
        flags = [name for name in ("zeros", "global_scale") if getattr(weight_format, f"has_{name}")]
        fields = [
            f"in_features={self.in_features}",
            f"out_features={self.out_features}",
            f"dtype={weight_format.dtype}",
            f"group_size={weight_format.group_size}",
            f"scale_dtype={weight_format.scale_dtype}",
            *flags,
            f"bias={self.bias is not None}",
            f"compute_dtype={str(self.compute_dtype).removeprefix('torch.')}",
        ]
        return ", ".join(fields)

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, torch.Tensor],
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """As ``nn.Module``'s, after checking that the checkpoint's weight has this layer's format and shape
        (buffers of equal shapes may hold another format's codes)."""
        header = state_dict.get(prefix + "header")
        if header is not None and not torch.equal(header.cpu(), self.header.cpu()):
            error_msgs.append(
                f"{prefix}header: the checkpoint's weight is {_header_text(header)}, this layer's "
                f"{_header_text(self.header)}; build the layer from the checkpoint with "
                "QuantizedLinear.from_state_dict"
            )
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> QuantizedLinear:
        """Moves the buffers where ``fn`` would (``.to(device)``, ``.cuda()``) but keeps their dtypes,
        which are the format's (``.half()`` must not turn a float32 global scale into float16)."""
        consistent = self._weight is not None  # the buffers form a weight (none is being replaced)
        for name, buffer in self._buffers.items():
            if buffer is not None:
                moved = fn(buffer)
                self._buffers[name] = moved if moved.dtype == buffer.dtype else buffer.to(moved.device)
        self._weight = None
        if consistent:  # made at once: a compiled graph's op finds it (and its launches) from the buffers
            self._make_weight()
        return self


def _header_text(header: torch.Tensor) -> str:
    """A header buffer's JSON, without its version (for error messages)."""
    fields = json.loads(bytes(header.cpu().tolist()).decode())
    return ", ".join(f"{name}={value}" for name, value in fields.items() if name != "version")


def quantize_model(
    model: nn.Module,
    dtype: tv.DType,
    group_size: int = 128,
    filter: Callable[[str, nn.Linear], bool] | None = None,
    **quantize_kwargs: object,
) -> list[str]:
    """Replace, in place, every ``nn.Linear`` of ``model`` for which ``filter(name, linear)`` is true (every
    one when ``filter`` is None) by ``QuantizedLinear.from_linear(linear, dtype, group_size,
    **quantize_kwargs)``; return the names of the layers replaced, in ``named_modules`` order."""
    chosen = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and (filter is None or filter(name, module))
    ]
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        try:
            quantized = QuantizedLinear.from_linear(linear, dtype, group_size, **quantize_kwargs)
        except (ValueError, TypeError) as error:
            raise type(error)(f"layer {name!r}: {error}") from error
        setattr(parent, child, quantized)
    return [name for name, _ in chosen]

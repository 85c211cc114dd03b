"""`QuantizedWeight`: a weight ``[N, K]`` as the quantized GEMM kernel reads it (codes in the pre-layout,
scales, zero points, global scale), with its exact dequantization, and saving and loading through
``state_dict`` (plain tensors: torch.save and safetensors) or pickling (``torch.save(qweight)``, which
``torch.load`` reads back with its default ``weights_only=True`` once ``tilevm.ops`` is imported).

>>> import torch, tilevm.ops as ops
>>> q = ops.quantize_weight(torch.randn(24, 64), "uint3", group_size=32)
>>> q  # doctest: +NORMALIZE_WHITESPACE
QuantizedWeight(uint3, shape=(24, 64), group_size=32, scale_dtype=float16, zeros,
                compute_dtype=torch.float16, device=cpu, nbytes=3264)
>>> again = ops.QuantizedWeight.from_state_dict(q.state_dict())
>>> torch.equal(again.dequantize(torch.float64), q.dequantize(torch.float64))
True
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass

import torch

import tilevm as tv
from tilevm.ops.qgemm import prelayout
from tilevm.ops.quantization import codecs
from tilevm.ops.quantization.formats import CODE_SCALE_DTYPES, COMPUTE_DTYPES, GROUP_SIZES, WeightFormat

__all__ = ["QuantizedWeight"]

#: the version of the state_dict layout (its keys, its header and the pre-layout of ``packed``); loading
#: checks it. 2: the codes of 1-, 2- and 4-bit weights stored as twins (``prelayout``)
STATE_VERSION = 2
_TENSOR_FIELDS = ("packed", "scales", "zeros", "global_scale")
_COMPUTE_NAMES = {torch_dtype: scale.name for torch_dtype, scale in COMPUTE_DTYPES.items()}


@dataclass(frozen=True, eq=False, repr=False)
class QuantizedWeight:
    """A quantized weight ``W [N, K]`` (``shape``, an ``nn.Linear.weight``: out_features x in_features):

    ``W[n, k] = (value(code[n, k]) - zeros[g, n]) * scales[g, n] * global_scale`` with ``g = k //
    format.group_size``, where

    - ``format``: the `WeightFormat`, with its actual group size (K for one group per channel) and scale
      dtype;
    - ``packed``: the codes (uint8 ``[N, K]`` bit patterns of ``format.dtype``) in the kernel's
      pre-layout, ``tilevm.ops.qgemm.prelayout.pack(codes, bits)``;
    - ``scales``: ``[K // group_size, N]``, in the compute dtype, or the uint8 codes of e8m0 / ue4m3;
    - ``zeros``: ``[K // group_size, N]`` integer-valued, in the compute dtype (uint formats), else None;
    - ``global_scale``: a float32 ``[]`` tensor (ue4m3 formats: NVFP4), else None;
    - ``compute_dtype``: torch.float16 or torch.bfloat16, the dtype of X and Y.

    All tensors live on one device and are contiguous, as the kernel reads them. Build one with
    `tilevm.ops.quantize_weight`. A weight is immutable: its tensors are checked once, here, and the op's
    host path keeps what it derives from them in ``host_cache`` (``tilevm.ops.qgemm.host``: launches with
    the tensors bound, by M bucket and bias), which goes with the weight.
    """

    format: WeightFormat
    shape: tuple[int, int]
    packed: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    global_scale: torch.Tensor | None
    compute_dtype: torch.dtype

    def __post_init__(self) -> None:
        try:
            expected = _expected_tensors(self.format, self.shape, self.compute_dtype)
        except TypeError:  # an unhashable shape or format: checked, and refused, without the cache
            expected = _expected_tensors.__wrapped__(self.format, self.shape, self.compute_dtype)
        for name, spec in expected:
            _check_tensor(name, getattr(self, name), spec, self.packed)
        # not a field: no part of the weight's value (a replaced or unpickled weight starts without it)
        object.__setattr__(self, "host_cache", {})

    @property
    def bits(self) -> int:
        """Bits per code."""
        return self.format.bits

    @property
    def group_size(self) -> int:
        """Values of k per scale (K for one group per output channel)."""
        return self.format.group_size

    @property
    def device(self) -> torch.device:
        """The device of every tensor of the weight."""
        return self.packed.device

    @property
    def nbytes(self) -> int:
        """Bytes the kernel reads: the packed codes (padding included), scales, zero points, global scale."""
        tensors = (getattr(self, name) for name in _TENSOR_FIELDS)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def codes(self) -> torch.Tensor:
        """The codes, uint8 ``[N, K]`` (the pre-layout undone)."""
        return prelayout.unpack(self.packed, self.bits, *self.shape)

    def scale_values(self) -> torch.Tensor:
        """The scales as float64 values ``[K // group_size, N]`` (e8m0 and ue4m3 codes decoded, the global
        scale not applied)."""
        if self.format.scale_dtype in CODE_SCALE_DTYPES:
            return codecs.decode(self.scales, self.format.scale_dtype)
        return self.scales.to(torch.float64)

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The weight ``[N, K]``: the format's formula computed in float64 (exactly: the factors have few
        significant bits) and rounded once, to nearest even, to ``dtype`` (default the compute dtype;
        torch.float64 gives the exact values)."""
        n, k = self.shape
        values = codecs.decode(self.codes(), self.format.dtype).reshape(n, -1, self.group_size)
        if self.zeros is not None:
            values = values - self.zeros.T.to(torch.float64)[..., None]
        weight = values * self.scale_values().T[..., None]
        if self.global_scale is not None:
            weight = weight * self.global_scale.to(torch.float64)
        return codecs.round_float64(weight.reshape(n, k), self.compute_dtype if dtype is None else dtype)

    def to(self, device: torch.device | str) -> QuantizedWeight:
        """This weight with every tensor on ``device``."""
        moved = {name: None if t is None else t.to(device) for name, t in self._tensors().items()}
        return dataclasses.replace(self, **moved)

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Tensors only, for ``torch.save`` or ``safetensors.torch.save_file``: ``packed``, ``scales``,
        ``zeros`` and ``global_scale`` where the format has them, and ``header``, the format, shape and
        compute dtype as UTF-8 JSON bytes (uint8, on the CPU); each key starts with ``prefix``."""
        header = {
            "version": STATE_VERSION,
            "dtype": self.format.dtype.name,
            "group_size": self.format.group_size,
            "scale_dtype": self.format.scale_dtype.name,
            "has_zeros": self.format.has_zeros,
            "has_global_scale": self.format.has_global_scale,
            "shape": list(self.shape),
            "compute_dtype": _COMPUTE_NAMES[self.compute_dtype],
        }
        header_bytes = torch.frombuffer(bytearray(json.dumps(header).encode()), dtype=torch.uint8)
        tensors = {prefix + name: t for name, t in self._tensors().items() if t is not None}
        return {**tensors, prefix + "header": header_bytes}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], prefix: str = "") -> QuantizedWeight:
        """The weight that `state_dict` saved (with the same ``prefix``); keys beyond it are errors."""
        return _from_state_dict(state, prefix)

    def __reduce__(self) -> tuple[object, tuple[dict[str, torch.Tensor]]]:
        # Pickle through plain tensors and a module-level function that torch.load's weights-only
        # unpickler is told to trust (see tilevm.ops.quantization's __init__).
        return _rebuild, (self.state_dict(),)

    def __repr__(self) -> str:
        fmt = self.format
        flags = [
            name for name, on in (("zeros", fmt.has_zeros), ("global_scale", fmt.has_global_scale)) if on
        ]
        fields = [
            fmt.dtype.name,
            f"shape={self.shape}",
            f"group_size={fmt.group_size}",
            f"scale_dtype={fmt.scale_dtype.name}",
            *flags,
            f"compute_dtype={self.compute_dtype}",
            f"device={self.device}",
            f"nbytes={self.nbytes}",
        ]
        return f"QuantizedWeight({', '.join(fields)})"

    def _tensors(self) -> dict[str, torch.Tensor | None]:
        return {name: getattr(self, name) for name in _TENSOR_FIELDS}


@functools.lru_cache(maxsize=1024)
def _expected_tensors(
    fmt: WeightFormat, shape: tuple[int, int], compute_dtype: torch.dtype
) -> tuple[tuple[str, tuple[torch.dtype, tuple[int, ...]] | None], ...]:
    """The format, shape and compute dtype checked, and each tensor's dtype and shape (None: absent); cached,
    since the custom op makes a weight at every call."""
    _check_format(fmt, shape, compute_dtype)
    n, k = shape
    groups = (k // fmt.group_size, n)
    scale_storage = torch.uint8 if fmt.scale_dtype in CODE_SCALE_DTYPES else compute_dtype
    return (
        ("packed", (torch.uint8, prelayout_shape(n, k, fmt.bits))),
        ("scales", (scale_storage, groups)),
        ("zeros", (compute_dtype, groups) if fmt.has_zeros else None),
        ("global_scale", (torch.float32, ()) if fmt.has_global_scale else None),
    )


def prelayout_shape(n: int, k: int, bits: int) -> tuple[int, ...]:
    """The shape of the pre-layout of ``[n, k]`` codes of ``bits`` bits (N padded to 8, K to a chunk)."""
    kc = prelayout.chunk_k(bits)
    return (
        -(-n // prelayout.N_GROUP),
        -(-k // kc),
        prelayout.loads_per_chunk(bits),
        prelayout.LANES,
        prelayout.LOAD_BYTES,
    )


def _check_format(fmt: WeightFormat, shape: tuple[int, int], compute_dtype: torch.dtype) -> None:
    if not isinstance(fmt, WeightFormat) or fmt.group_size is None or fmt.scale_dtype is None:
        raise ValueError(
            f"format must be a resolved WeightFormat (group size and scale dtype set), not {fmt!r}"
        )
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be torch.float16 or torch.bfloat16, not {compute_dtype}")
    valid_shape = (
        isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(s, int) and s > 0 for s in shape)
    )
    if not valid_shape:
        raise ValueError(f"shape must be a tuple (N, K) of positive ints, not {shape!r}")
    fmt.resolve(shape[1], compute_dtype)  # the group size divides K; the scale dtype fits the compute dtype


def _check_tensor(
    name: str, tensor: object, spec: tuple[torch.dtype, tuple[int, ...]] | None, packed: torch.Tensor
) -> None:
    if spec is None:
        if tensor is not None:
            raise ValueError(f"{name} must be None for this format")
        return
    dtype, shape = spec
    if not isinstance(tensor, torch.Tensor) or tensor.dtype != dtype or tuple(tensor.shape) != shape:
        got = (
            f"a {tensor.dtype} tensor {list(tensor.shape)}"
            if isinstance(tensor, torch.Tensor)
            else repr(tensor)
        )
        raise ValueError(f"{name} must be a {dtype} tensor of shape {list(shape)}, got {got}")
    if tensor.device != packed.device:
        raise ValueError(
            f"{name} is on {tensor.device} but packed is on {packed.device}: all must share a device"
        )
    if not tensor.is_contiguous():
        raise ValueError(f"{name} must be contiguous (the kernel reads it row by row); call .contiguous()")


def _from_state_dict(state: dict[str, torch.Tensor], prefix: str) -> QuantizedWeight:
    header = _read_header(state, prefix)
    n, k = header["shape"]
    compute_dtype = {name: d for d, name in _COMPUTE_NAMES.items()}[header["compute_dtype"]]
    group_size = header["group_size"]
    requested = WeightFormat(
        header["dtype"],
        group_size if group_size in GROUP_SIZES else None,  # else one group per channel, of K values
        header["scale_dtype"],
        header["has_zeros"],
        header["has_global_scale"],
    )
    fmt = requested.resolve(k, compute_dtype)
    if fmt.group_size != group_size:
        raise ValueError(
            f"{prefix + 'header'!r} has group_size={group_size!r}, which is neither supported nor K = {k}"
        )
    names = [
        name for name in _TENSOR_FIELDS if name in ("packed", "scales") or getattr(fmt, f"has_{name}", False)
    ]
    expected = {prefix + name for name in (*names, "header")}
    present = {key for key in state if key.startswith(prefix)}
    if present != expected:
        raise ValueError(
            f"the state dict has keys {sorted(present)} under prefix {prefix!r}, expected {sorted(expected)}"
        )
    tensors = {name: state.get(prefix + name) for name in _TENSOR_FIELDS}
    weight = QuantizedWeight(fmt, (n, k), compute_dtype=compute_dtype, **tensors)
    _check_scale_codes(weight)
    return weight


def _read_header(state: dict[str, torch.Tensor], prefix: str) -> dict[str, object]:
    header = state.get(prefix + "header")
    if not isinstance(header, torch.Tensor) or header.dtype != torch.uint8 or header.dim() != 1:
        raise ValueError(
            f"the state dict has no {prefix + 'header'!r} (uint8 JSON bytes, from QuantizedWeight.state_dict)"
        )
    try:
        parsed = json.loads(bytes(header.cpu().tolist()).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{prefix + 'header'!r} is not UTF-8 JSON: {error}") from None
    if not isinstance(parsed, dict) or parsed.get("version") != STATE_VERSION:
        version = parsed.get("version") if isinstance(parsed, dict) else None
        raise ValueError(
            f"{prefix + 'header'!r} has version {version!r}; this tilevm reads version {STATE_VERSION}"
        )
    keys = {
        "version",
        "dtype",
        "group_size",
        "scale_dtype",
        "has_zeros",
        "has_global_scale",
        "shape",
        "compute_dtype",
    }
    if set(parsed) != keys or parsed["compute_dtype"] not in _COMPUTE_NAMES.values():
        raise ValueError(f"{prefix + 'header'!r} is malformed: {parsed}")
    return parsed


def _check_scale_codes(weight: QuantizedWeight) -> None:
    """Block-scale codes must be numbers: not e8m0's NaN (255), not ue4m3's NaN (127) or beyond."""
    scale_dtype = weight.format.scale_dtype
    if scale_dtype not in CODE_SCALE_DTYPES:
        return
    limit = tv.e8m0.max_magnitude_code if scale_dtype == tv.e8m0 else tv.ue4m3.max_magnitude_code
    if weight.scales.numel() and int(weight.scales.max()) > limit:
        raise ValueError(f"scales holds {scale_dtype.name} codes above {limit} (NaN or out of range)")


def _rebuild(state: dict[str, torch.Tensor]) -> QuantizedWeight:
    """Unpickle a QuantizedWeight (see `QuantizedWeight.__reduce__`)."""
    return QuantizedWeight.from_state_dict(state)


# torch.load's default (weights_only=True) unpickles only what it is told to trust: a pickled
# QuantizedWeight is this function applied to a dict of tensors.
torch.serialization.add_safe_globals([_rebuild])

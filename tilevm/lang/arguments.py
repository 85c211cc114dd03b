"""Kernel arguments on the host: what a launch passes, what the kernel is specialized on, and checks.

A tensor argument becomes a pointer, its sizes and its strides (in elements of the kernel's dtype). The
kernel is specialized on what matters for speed: dtypes and ranks, which strides are 1, whether pointers are
16-byte aligned and whether integers are multiples of 16. A stride of 1 becomes the constant 1 in the IR.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch

from tilevm.dtypes import (
    DType,
    bfloat16,
    e8m0,
    float8_e4m3,
    float8_e5m2,
    float16,
    float32,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.errors import LaunchError
from tilevm.lang.annotations import TensorAnnotation, constexpr

__all__ = ["TensorArgument", "bind_arguments", "view", "torch_dtype_to_tilevm"]

ALIGNMENT_BYTES = 16
DIVISOR = 16
INT32_LIMIT = 2**31

_TORCH_DTYPES = {
    torch.float16: float16, torch.bfloat16: bfloat16, torch.float32: float32,
    torch.int8: int8, torch.int16: int16, torch.int32: int32, torch.int64: int64,
    torch.uint8: uint8, torch.uint16: uint16, torch.uint32: uint32, torch.uint64: uint64,
    torch.float8_e4m3fn: float8_e4m3, torch.float8_e5m2: float8_e5m2,
}  # fmt: skip
if hasattr(torch, "float8_e8m0fnu"):
    _TORCH_DTYPES[torch.float8_e8m0fnu] = e8m0


def torch_dtype_to_tilevm(dtype: torch.dtype, what: str = "tensor") -> DType:
    if dtype not in _TORCH_DTYPES:
        hint = " (pass it as uint8)" if dtype is torch.bool else ""
        raise LaunchError(f"{what} has torch dtype {dtype}, which tilevm does not read{hint}")
    return _TORCH_DTYPES[dtype]


@dataclass(frozen=True)
class TensorArgument:
    """A torch tensor as the kernel sees it: its dtype, shape and strides counted in that dtype's elements."""

    tensor: torch.Tensor
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @functools.cached_property
    def aligned(self) -> bool:
        """Whether the data start at a 16-byte boundary (read once: the key and the parameters both ask)."""
        return self.tensor.data_ptr() % ALIGNMENT_BYTES == 0

    def key(self) -> tuple:
        return (
            "tensor", self.dtype, self.rank, self.aligned,
            tuple(stride == 1 for stride in self.strides),
            tuple(size % DIVISOR == 0 for size in self.shape),
            tuple(stride % DIVISOR == 0 for stride in self.strides),
        )  # fmt: skip


def view(tensor: torch.Tensor, dtype: DType, shape: tuple[int, ...] | None = None) -> TensorArgument:
    """Pass ``tensor``'s bytes to a kernel as a tensor of ``dtype`` (on the host; in a kernel, ``view`` is
    the register-tile instruction).

    Without ``shape``, the last dimension is rescaled: a ``[4, 8]`` uint8 tensor viewed as int4 is
    ``[4, 16]``.
    The tensor must be contiguous and its bits must hold exactly the elements of the view.

    >>> import torch, tilevm as tv
    >>> tv.view(torch.zeros(4, 3, dtype=torch.uint8), tv.int3).shape
    (4, 8)
    """
    if not isinstance(tensor, torch.Tensor):
        raise LaunchError(f"view takes a torch tensor, got {type(tensor).__name__}")
    if not tensor.is_contiguous():
        raise LaunchError(
            f"view needs a contiguous tensor (strides {tuple(tensor.stride())}); call .contiguous()"
        )
    total_bits = tensor.numel() * tensor.element_size() * 8
    if shape is None:
        if tensor.dim() == 0:
            raise LaunchError("view of a 0-d tensor needs an explicit shape")
        row_bits = tensor.shape[-1] * tensor.element_size() * 8
        if row_bits % dtype.nbits:
            raise LaunchError(
                f"a row of {row_bits} bits does not hold a whole number of {dtype} elements; give a shape"
            )
        shape = (*tensor.shape[:-1], row_bits // dtype.nbits)
    shape = tuple(int(extent) for extent in shape)
    count = 1
    for extent in shape:
        count *= extent
    if count * dtype.nbits != total_bits:
        raise LaunchError(
            f"view as {dtype}{list(shape)} needs {count * dtype.nbits} bits, the tensor has {total_bits}"
        )
    strides = tuple(_row_major_strides(shape))
    return TensorArgument(tensor, dtype, shape, strides)


def _row_major_strides(shape: tuple[int, ...]) -> list[int]:
    strides, running = [], 1
    for extent in reversed(shape):
        strides.append(running)
        running *= extent
    return strides[::-1]


def tensor_argument(name: str, value: object, annotation: TensorAnnotation) -> TensorArgument:
    if isinstance(value, torch.Tensor):
        dtype = torch_dtype_to_tilevm(value.dtype, f"argument '{name}'")
        if _reinterprets(dtype, annotation.dtype):
            argument = view(value, annotation.dtype)
        else:
            argument = TensorArgument(value, dtype, tuple(value.shape), tuple(value.stride()))
    elif isinstance(value, TensorArgument):
        argument = value
    else:
        raise LaunchError(f"argument '{name}' must be a torch tensor, got {type(value).__name__}")
    if annotation.dtype is not None and argument.dtype != annotation.dtype:
        raise LaunchError(
            f"argument '{name}' is a {argument.dtype} tensor; the kernel reads {annotation.dtype}"
        )
    if annotation.rank is not None and argument.rank != annotation.rank:
        raise LaunchError(
            f"argument '{name}' has rank {argument.rank}; the kernel takes rank {annotation.rank}"
        )
    if argument.rank == 0:
        raise LaunchError(f"argument '{name}' is a 0-d tensor; pass a Python scalar instead")
    for extent in (*argument.shape, *argument.strides):
        if not 0 <= extent < INT32_LIMIT:
            raise LaunchError(f"argument '{name}': sizes and strides must be in [0, 2**31), got {extent}")
    element_bytes = max(1, argument.dtype.nbits // 8)
    if argument.tensor.data_ptr() % element_bytes:
        raise LaunchError(
            f"argument '{name}' starts at an address that is not a multiple of {element_bytes} bytes, "
            f"which {argument.dtype} elements need"
        )
    return argument


def _reinterprets(container: DType, wanted: DType | None) -> bool:
    """Integer containers (uint8 bytes, int32 words) carry narrower dtypes' bits; other dtypes are values."""
    return (
        wanted is not None
        and wanted != container
        and container.is_integer
        and wanted.nbits <= container.nbits
    )


def scalar_argument(name: str, value: object, annotation: object) -> object:
    if isinstance(annotation, DType):
        expected = float if annotation.is_float else (bool if annotation.kind == "bool" else int)
    else:
        expected = annotation
    if isinstance(value, torch.Tensor) or not isinstance(value, (int, float, bool)):
        raise LaunchError(
            f"argument '{name}' must be a Python {expected.__name__}, got {type(value).__name__}"
        )
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise LaunchError(f"argument '{name}' must be an int, got {value!r}")
    return expected(value)


def bind_arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, object]:
    """Match the call's arguments to the kernel's parameters, checking each against its annotation.

    Tensors become ``TensorArgument``; scalars are checked against their type; constexprs pass unchanged.
    """
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise LaunchError(str(error)) from None
    bound.apply_defaults()
    values: dict[str, object] = {}
    for name, value in bound.arguments.items():
        annotation = signature.parameters[name].annotation
        if annotation is constexpr:
            values[name] = value
        elif isinstance(annotation, TensorAnnotation):
            values[name] = tensor_argument(name, value, annotation)
        else:
            values[name] = scalar_argument(name, value, annotation)
    return values


def specialization_key(values: dict[str, object], signature: inspect.Signature) -> tuple:
    """What the compiled program depends on: constexpr values, tensor properties, integer divisibility."""
    key = []
    for name, value in values.items():
        annotation = signature.parameters[name].annotation
        if annotation is constexpr:
            key.append(("constexpr", _hashable(value)))
        elif isinstance(value, TensorArgument):
            key.append(value.key())
        elif isinstance(value, int) and not isinstance(value, bool):
            key.append(("int", value % DIVISOR == 0))
        else:
            key.append((type(value).__name__,))
    return tuple(key)


def _hashable(value: object) -> object:
    try:
        hash(value)
    except TypeError:
        raise LaunchError(f"a constexpr argument must be hashable, got {type(value).__name__}") from None
    return (type(value).__name__, value)

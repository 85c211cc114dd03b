"""The launch binding: a launch's Python arguments (torch tensors, numbers, constexprs) checked against the
kernel's annotations, described for the compiler, and flattened into the values of the IR parameters.

A tensor argument becomes a pointer, its sizes and its strides (in elements of the kernel's dtype). The
kernel is specialized on what matters for speed: dtypes and ranks, which strides are 1, whether pointers are
16-byte aligned and whether integers are multiples of 16 (see ``tilevm.lang.parameters``, the torch-free
description the front end compiles from).
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
from tilevm.lang.compute_builtins import view_tile
from tilevm.lang.functions import in_kernel
from tilevm.lang.parameters import (
    ALIGNMENT_BYTES,
    ConstexprParameter,
    FlatParameter,
    Parameter,
    ScalarParameter,
    TensorParameter,
    divisibility,
    scalar_dtype,
)
from tilevm.lang.values import from_numpy

__all__ = [
    "INT32_LIMIT",
    "TORCH_DTYPES",
    "TensorArgument",
    "bind_arguments",
    "describe_arguments",
    "flat_values",
    "reinterprets",
    "torch_dtype_to_tilevm",
    "view",
]

#: sizes and strides are passed as int32: they must be below this
INT32_LIMIT = 2**31

#: the torch dtypes a kernel reads, and the tilevm dtype of each
TORCH_DTYPES = {
    torch.float16: float16, torch.bfloat16: bfloat16, torch.float32: float32,
    torch.int8: int8, torch.int16: int16, torch.int32: int32, torch.int64: int64,
    torch.uint8: uint8, torch.uint16: uint16, torch.uint32: uint32, torch.uint64: uint64,
    torch.float8_e4m3fn: float8_e4m3, torch.float8_e5m2: float8_e5m2,
}  # fmt: skip
if hasattr(torch, "float8_e8m0fnu"):
    TORCH_DTYPES[torch.float8_e8m0fnu] = e8m0


def torch_dtype_to_tilevm(dtype: torch.dtype, what: str = "tensor") -> DType:
    if dtype not in TORCH_DTYPES:
        hint = " (pass it as uint8)" if dtype is torch.bool else ""
        raise LaunchError(f"{what} has torch dtype {dtype}, which tilevm does not read{hint}")
    return TORCH_DTYPES[dtype]


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

    def describe(self, name: str) -> TensorParameter:
        """What the kernel is specialized on for this tensor, passed as parameter ``name``."""
        strides = self.strides
        sub_byte = self.dtype.nbits < 8
        return TensorParameter(
            name,
            self.dtype,
            len(self.shape),
            ALIGNMENT_BYTES if self.aligned else 1,
            tuple([stride == 1 for stride in strides]),  # lists: this runs on every launch
            tuple([divisibility(size, sub_byte) for size in self.shape]),
            tuple([divisibility(stride, sub_byte) for stride in strides]),
        )


@in_kernel(view_tile)
def view(tensor: torch.Tensor, dtype: DType, shape: tuple[int, ...] | None = None) -> TensorArgument:
    """Pass ``tensor``'s bytes to a kernel as a tensor of ``dtype`` (on the host; in a kernel, ``view`` is
    the register-tile instruction).

    Without ``shape``, the last dimension is rescaled: a ``[4, 8]`` uint8 tensor viewed as int4 is
    ``[4, 16]``.
    The tensor must be contiguous and hold the view's elements densely, as ``tilevm.dtypes.pack`` lays them
    out: the bits after the last element are padding if they are fewer than one of the tensor's own elements
    (13 x 10 int3 elements are 390 bits, packed in 49 bytes). Without ``shape`` no padding is allowed, since
    the number of elements would be a guess.

    >>> import numpy as np, torch, tilevm as tv
    >>> tv.view(torch.zeros(4, 3, dtype=torch.uint8), tv.int3).shape
    (4, 8)
    >>> packed = tv.dtypes.pack(np.zeros(130, np.int8), tv.int3)
    >>> packed.size, tv.view(torch.from_numpy(packed), tv.int3, (13, 10)).shape
    (49, (13, 10))
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
                f"a row of {row_bits} bits does not hold a whole number of {dtype} elements; give the "
                f"shape: tv.view(tensor, tv.{dtype}, shape)"
            )
        shape = (*tensor.shape[:-1], row_bits // dtype.nbits)
    shape = tuple(int(extent) for extent in shape)
    count = 1
    for extent in shape:
        count *= extent
    padding = total_bits - count * dtype.nbits
    container_bits = tensor.element_size() * 8
    if not 0 <= padding < container_bits:
        raise LaunchError(
            f"view as {dtype}{list(shape)} needs {count * dtype.nbits} bits, the tensor has {total_bits} "
            f"(padding after the last element must be fewer than {container_bits} bits)"
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
        if reinterprets(dtype, annotation.dtype):
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


def reinterprets(container: DType, wanted: DType | None) -> bool:
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
    dtype = scalar_dtype(annotation)
    if dtype.is_integer and not dtype.min_value <= value <= dtype.max_value:
        # checked here, before compiling, for every target (a GPU launch would pass its low bits)
        raise LaunchError(
            f"argument {name} must be an int in [{dtype.min_value}, {dtype.max_value}] ({dtype}), "
            f"got {value!r}"
        )
    return expected(value)


def bind_arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, object]:
    """Match the call's arguments to the kernel's parameters, checking each against its annotation.

    Tensors become ``TensorArgument``; scalars are checked against their type; constexprs pass unchanged.
    A numpy number (``np.int64(8)``, ``np.float32(0.5)``, ``np.bool_(True)``), as a scalar or a constexpr, is
    taken as the Python number it holds.
    """
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise LaunchError(str(error)) from None
    bound.apply_defaults()
    values: dict[str, object] = {}
    for name, value in bound.arguments.items():
        annotation = signature.parameters[name].annotation
        value = from_numpy(value)
        if annotation is constexpr:
            values[name] = value
        elif isinstance(annotation, TensorAnnotation):
            values[name] = tensor_argument(name, value, annotation)
        else:
            values[name] = scalar_argument(name, value, annotation)
    return values


def describe_arguments(values: dict[str, object], signature: inspect.Signature) -> tuple[Parameter, ...]:
    """What the compiled program depends on, parameter by parameter (the key of the program cache)."""
    described: list[Parameter] = []
    declared = signature.parameters
    for name, value in values.items():
        annotation = declared[name].annotation
        if annotation is constexpr:
            described.append(ConstexprParameter(name, value))
        elif isinstance(value, TensorArgument):
            described.append(value.describe(name))
        else:
            integer = isinstance(value, int) and not isinstance(value, bool)
            described.append(
                ScalarParameter(name, scalar_dtype(annotation), divisibility(value) if integer else 1)
            )
    return tuple(described)


def flat_values(
    flat: list[FlatParameter], values: dict[str, object], addresses: bool = False
) -> list[object]:
    """The launch values of the IR parameters ``flat`` (from ``flat_parameters``): a tensor's tensor (its
    address, with ``addresses``: what a GPU launch passes), sizes and strides, and the scalars."""
    arguments = []
    for parameter in flat:
        value = values[parameter.owner]
        if parameter.kind == "pointer":
            value = value.tensor.data_ptr() if addresses else value.tensor
        elif parameter.kind == "size":
            value = value.shape[parameter.dim]
        elif parameter.kind == "stride":
            value = value.strides[parameter.dim]
        arguments.append(value)
    return arguments

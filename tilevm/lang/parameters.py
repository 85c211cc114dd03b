"""What a kernel is specialized on, parameter by parameter, and the IR parameters each one becomes.

The front end compiles from these descriptions alone (no torch here): the runtime's launch binding
(``tilevm.runtime.binding``) describes each argument of a launch, and the tuple of descriptions is the key of
the compiled program. A tensor becomes a pointer, its sizes and its strides; a stride of 1 becomes the
constant 1 in the IR; pointers 16-byte aligned and integers that are multiples of 16 are marked so.

>>> from tilevm.dtypes import float16
>>> tensor = TensorParameter("x", float16, 2, divisibility=16, unit_strides=(False, True),
...                          size_divisibility=(1, 16), stride_divisibility=(16, 1))
>>> [(flat.name, flat.kind, flat.divisibility) for flat in flat_parameters([tensor])]
[('x', 'pointer', 16), ('x_size0', 'size', 1), ('x_size1', 'size', 16), ('x_stride0', 'stride', 16)]
>>> ConstexprParameter("scale", 0.0) == ConstexprParameter("scale", -0.0)
False
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tilevm.dtypes import DType, boolean, float32, int32
from tilevm.errors import LaunchError

__all__ = [
    "ALIGNMENT_BYTES",
    "DIVISOR",
    "ConstexprParameter",
    "FlatParameter",
    "Parameter",
    "ScalarParameter",
    "TensorParameter",
    "divisibility",
    "flat_parameters",
    "scalar_dtype",
]

#: a pointer that is a multiple of this many bytes is marked aligned (a 16-byte vector access fits)
ALIGNMENT_BYTES = 16
#: sizes, strides and integer scalars that are multiples of this are marked so
DIVISOR = 16


@dataclass(frozen=True, slots=True)
class TensorParameter:
    """A tensor argument as the kernel is specialized on it: its dtype (the kernel's view of its bits), its
    rank, which strides are 1, and the divisibility of its pointer (in bytes), sizes and strides."""

    name: str
    dtype: DType
    rank: int
    divisibility: int
    unit_strides: tuple[bool, ...]
    size_divisibility: tuple[int, ...]
    stride_divisibility: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ScalarParameter:
    """A runtime scalar: its IR dtype, and 16 if its value is a multiple of 16 (1 otherwise)."""

    name: str
    dtype: DType
    divisibility: int


@dataclass(frozen=True)
class ConstexprParameter:
    """A compile-time constant. Compared by ``key``, its value's identity down to the bits: -0.0 is not 0.0,
    and a NaN equals itself, so that the program compiled for a float is found again for it and only it."""

    name: str
    value: object = field(compare=False)
    key: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", constexpr_key(self.value, self.name))


Parameter = TensorParameter | ScalarParameter | ConstexprParameter


def constexpr_key(value: object, name: str) -> object:
    """What identifies a constexpr value: its type and value; floats (and complex numbers) by their bits,
    tuples element by element."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, complex):
        return ("complex", struct.pack("<dd", value.real, value.imag))
    if isinstance(value, tuple):
        return ("tuple", tuple(constexpr_key(item, name) for item in value))
    try:
        hash(value)
    except TypeError:
        raise LaunchError(
            f"constexpr argument '{name}' must be hashable, got {type(value).__name__}"
        ) from None
    return (type(value).__name__, value)


def scalar_dtype(annotation: object) -> DType:
    """The IR dtype of a scalar parameter annotated ``int``, ``float``, ``bool`` or a tilevm dtype."""
    if isinstance(annotation, DType):
        return annotation
    return {int: int32, float: float32, bool: boolean}[annotation]


def divisibility(value: int, sub_byte: bool = False) -> int:
    """16 for a multiple of 16, else 1: what a size, a stride or an int scalar is known to divide by.

    A size or stride of a tensor of sub-byte elements (``sub_byte``) is known more finely, as the largest
    power of two up to 16 that divides it, since whether a row ends inside a byte decides how it can be
    stored (a byte shared with elements outside the tensor cannot be written by one plain store).

    >>> divisibility(48), divisibility(40), divisibility(40, sub_byte=True)
    (16, 1, 8)
    """
    if sub_byte:
        return math.gcd(value, DIVISOR) if value else DIVISOR
    return DIVISOR if value % DIVISOR == 0 else 1


@dataclass(frozen=True)
class FlatParameter:
    """One IR parameter: a tensor's pointer, a size or a stride (of dimension ``dim``), or a scalar."""

    name: str
    kind: str  # "pointer", "size", "stride" or "scalar"
    dtype: DType
    divisibility: int
    owner: str  # the Python parameter it comes from
    dim: int | None = None


def flat_parameters(parameters: Iterable[Parameter]) -> Iterator[FlatParameter]:
    """The IR parameters of a kernel, in order. The front end declares them and the launcher passes the
    values of the same walk, so that the two orders cannot disagree."""
    for parameter in parameters:
        if isinstance(parameter, TensorParameter):
            yield from _tensor_parameters(parameter)
        elif isinstance(parameter, ScalarParameter):
            yield FlatParameter(
                parameter.name, "scalar", parameter.dtype, parameter.divisibility, parameter.name
            )


def _tensor_parameters(tensor: TensorParameter) -> Iterator[FlatParameter]:
    name = tensor.name
    yield FlatParameter(name, "pointer", tensor.dtype, tensor.divisibility, name)
    for dim, size_divisibility in enumerate(tensor.size_divisibility):
        yield FlatParameter(f"{name}_size{dim}", "size", int32, size_divisibility, name, dim)
    for dim, (unit, stride_divisibility) in enumerate(zip(tensor.unit_strides, tensor.stride_divisibility)):
        if not unit:  # a unit stride is compiled in as the constant 1
            yield FlatParameter(f"{name}_stride{dim}", "stride", int32, stride_divisibility, name, dim)

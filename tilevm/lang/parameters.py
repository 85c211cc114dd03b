"""How a kernel's Python parameters become IR parameters, and the launch values that match them.

The front end (declaring) and the launcher (passing values) both walk ``flat_parameters`` so that the two
orders cannot disagree.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

from tilevm.dtypes import DType, boolean, float32, int32
from tilevm.lang.annotations import TensorAnnotation, constexpr
from tilevm.lang.arguments import ALIGNMENT_BYTES, DIVISOR, TensorArgument

__all__ = ["FlatParameter", "flat_parameters", "scalar_dtype"]


@dataclass(frozen=True)
class FlatParameter:
    """One IR parameter: a tensor's pointer, size or stride, or a scalar; ``value`` is the launch value."""

    name: str
    kind: str  # "pointer", "size", "stride" or "scalar"
    dtype: DType
    value: object
    divisibility: int
    owner: str  # the Python parameter it comes from


def scalar_dtype(annotation: object) -> DType:
    """The IR dtype of a scalar parameter annotated ``int``, ``float``, ``bool`` or a tilevm dtype."""
    if isinstance(annotation, DType):
        return annotation
    return {int: int32, float: float32, bool: boolean}[annotation]


def flat_parameters(signature: inspect.Signature, values: dict[str, object]) -> Iterator[FlatParameter]:
    for name, value in values.items():
        annotation = signature.parameters[name].annotation
        if annotation is constexpr:
            continue
        if isinstance(annotation, TensorAnnotation):
            yield from _tensor_parameters(name, value)
        else:
            divisible = isinstance(value, int) and not isinstance(value, bool) and value % DIVISOR == 0
            yield FlatParameter(
                name, "scalar", scalar_dtype(annotation), value, DIVISOR if divisible else 1, name
            )


def _tensor_parameters(name: str, argument: TensorArgument) -> Iterator[FlatParameter]:
    divisibility = ALIGNMENT_BYTES if argument.aligned else 1
    yield FlatParameter(name, "pointer", argument.dtype, argument.tensor, divisibility, name)
    for dim, size in enumerate(argument.shape):
        yield FlatParameter(f"{name}_size{dim}", "size", int32, size, _divisibility(size), name)
    for dim, stride in enumerate(argument.strides):
        if stride != 1:  # a unit stride is compiled in as the constant 1
            yield FlatParameter(f"{name}_stride{dim}", "stride", int32, stride, _divisibility(stride), name)


def _divisibility(value: int) -> int:
    return DIVISOR if value % DIVISOR == 0 else 1

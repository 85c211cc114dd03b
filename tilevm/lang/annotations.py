"""What a kernel's parameters are: compile-time constants, runtime scalars, and tensors.

>>> import tilevm as tv
>>> tv.Tensor[tv.int4, 2]
Tensor[int4, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.dtypes import DType

__all__ = ["Tensor", "TensorAnnotation", "constexpr"]


class constexpr:
    """Annotates a parameter whose value is known at compile time: the kernel is specialized on it.

    Inside the kernel, a constexpr is a plain Python value: ``if`` on it is decided at compile time.
    """


@dataclass(frozen=True)
class TensorAnnotation:
    """A tensor parameter, optionally with the dtype the kernel reads it as and its rank.

    With a ``dtype`` narrower than the torch tensor's (``Tensor[tv.int4]`` for a ``torch.uint8`` tensor), the
    tensor's last dimension is reinterpreted: 8 bits of uint8 hold two int4 elements.
    """

    dtype: DType | None = None
    rank: int | None = None

    def __getitem__(self, item: DType | tuple[DType, int]) -> TensorAnnotation:
        dtype, rank = item if isinstance(item, tuple) else (item, None)
        if not isinstance(dtype, DType) or not (rank is None or (isinstance(rank, int) and rank > 0)):
            raise TypeError(f"Tensor[...] takes a tilevm dtype and optionally a positive rank, not {item!r}")
        return TensorAnnotation(dtype, rank)

    def __repr__(self) -> str:
        parts = [str(self.dtype) if self.dtype else "any"] + ([str(self.rank)] if self.rank else [])
        return f"Tensor[{', '.join(parts)}]" if self.dtype or self.rank else "Tensor"


Tensor = TensorAnnotation()

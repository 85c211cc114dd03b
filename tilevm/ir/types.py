"""Types of IR values: scalars, pointers, global tensors and tiles (shared or register) of Tile IR, and the
short vectors and address spaces of the per-thread Thread IR (``tilevm.ir.thread``).

Types are frozen dataclasses compared structurally. A tile's layout is part of its type and is ``None``
until a pass fixes it; a layout set before layout inference (by the DSL's ``layout=`` arguments or
``convert_layout``) is pinned: inference keeps it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tilevm.dtypes import DType
from tilevm.layout import RegisterLayout, SharedLayout

if TYPE_CHECKING:
    from tilevm.ir.expr import Expr

__all__ = [
    "AddressSpace",
    "GlobalType",
    "PointerType",
    "ScalarType",
    "Scope",
    "TileType",
    "Type",
    "VectorType",
]


class Scope(enum.Enum):
    """Where a tile lives: shared memory (seen by the block) or registers (spread over its threads)."""

    SHARED = "shared"
    REGISTER = "register"


@dataclass(frozen=True)
class ScalarType:
    """One value, the same in every thread of the block (a block index, a loop counter, a size)."""

    dtype: DType

    def __str__(self) -> str:
        return str(self.dtype)


class AddressSpace(enum.Enum):
    """The memory a pointer addresses: device memory, or the block's shared memory (PTX's state spaces)."""

    GLOBAL = "global"
    SHARED = "shared"


@dataclass(frozen=True)
class PointerType:
    """The address of memory holding elements of ``dtype`` (densely packed when sub-byte), in ``space``.

    Tile IR's pointers (kernel parameters) are global; Thread IR also holds shared-memory addresses.
    """

    dtype: DType
    space: AddressSpace = AddressSpace.GLOBAL

    def __str__(self) -> str:
        """``ptr<float16>`` (global, as Tile IR writes it) or ``ptr<float16, shared>``."""
        space = "" if self.space is AddressSpace.GLOBAL else f", {self.space.value}"
        return f"ptr<{self.dtype}{space}>"


@dataclass(frozen=True)
class VectorType:
    """``length`` values of ``dtype`` in one thread's registers, packed: element 0 in the lowest bits, as PTX
    packs ``.f16x2`` (``vector<float16, 2>`` is one 32-bit register, ``vector<uint32, 4>`` four)."""

    dtype: DType
    length: int

    @property
    def nbits(self) -> int:
        return self.dtype.nbits * self.length

    def __str__(self) -> str:
        return f"vector<{self.dtype}, {self.length}>"


@dataclass(frozen=True)
class GlobalType:
    """A strided view of device memory; sizes and strides (in elements) may be runtime expressions."""

    dtype: DType
    shape: tuple[Expr, ...]
    strides: tuple[Expr, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:  # for messages; the printer shows the sizes and strides too
        return f"global<{self.dtype}, rank {self.rank}>"


@dataclass(frozen=True)
class TileType:
    """A tile of static shape in shared memory or registers, with its layout once known."""

    dtype: DType
    shape: tuple[int, ...]
    scope: Scope
    layout: RegisterLayout | SharedLayout | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        count = 1
        for extent in self.shape:
            count *= extent
        return count

    def __str__(self) -> str:
        """The type as the IR text writes it: ``register<float32, [4, 8]>``, with the layout once known."""
        layout = "" if self.layout is None else f", {self.layout}"
        return f"{self.scope.value}<{self.dtype}, [{', '.join(map(str, self.shape))}]{layout}>"

    def with_layout(self, layout: RegisterLayout | SharedLayout | None) -> TileType:
        return replace(self, layout=layout)


Type = ScalarType | PointerType | VectorType | GlobalType | TileType

"""Types of Tile IR values: scalars, pointers, global tensors and tiles (shared or register).

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

__all__ = ["GlobalType", "PointerType", "ScalarType", "Scope", "TileType", "Type"]


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


@dataclass(frozen=True)
class PointerType:
    """The address of device memory holding elements of ``dtype`` (densely packed when sub-byte)."""

    dtype: DType

    def __str__(self) -> str:
        return f"ptr<{self.dtype}>"


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


Type = ScalarType | PointerType | GlobalType | TileType

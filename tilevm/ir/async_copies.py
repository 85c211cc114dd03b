"""Tile IR instructions that copy global memory to shared memory asynchronously, and the barrier: cp.async,
its commit and wait, and sync.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilevm.ir.expr import Expr
from tilevm.ir.global_access import check_window
from tilevm.ir.inst import Instruction, IRTypeError, expect_global, expect_tile
from tilevm.ir.types import Scope

__all__ = [
    "CopyAsync",
    "CopyAsyncCommit",
    "CopyAsyncWait",
    "Sync",
]


@dataclass(frozen=True, eq=False, kw_only=True)
class CopyAsync(Instruction):
    """Start copying the global window at ``offsets`` into the shared tile (cp.async); zeros outside."""

    destination: Expr
    source: Expr
    offsets: tuple[Expr, ...]
    dims: tuple[int, ...]
    opname = "copy_async"

    def result_type(self) -> None:
        target = expect_tile(self.destination, "copy_async's destination", Scope.SHARED)
        source = expect_global(self.source, "copy_async's source")
        check_window(source, self.offsets, self.dims, target.shape)
        if source.dtype != target.dtype:
            raise IRTypeError(f"copy_async from {source.dtype} memory into a {target.dtype} shared tile")


@dataclass(frozen=True, eq=False, kw_only=True)
class CopyAsyncCommit(Instruction):
    """Close the group of copies started since the last commit."""

    opname = "copy_async_commit"


@dataclass(frozen=True, eq=False, kw_only=True)
class CopyAsyncWait(Instruction):
    """Wait until at most ``pending`` committed groups are still in flight (then ``sync`` to share them)."""

    pending: int
    opname = "copy_async_wait"

    def result_type(self) -> None:
        if self.pending < 0:
            raise IRTypeError(f"copy_async_wait needs pending >= 0, got {self.pending}")


@dataclass(frozen=True, eq=False, kw_only=True)
class Sync(Instruction):
    """A barrier for the threads of the block; shared-memory writes before it are seen after it."""

    opname = "sync"

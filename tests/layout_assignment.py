"""Random layouts for every register tile of a program, and a check that they change nothing it computes.

``assign_random_layouts`` gives each register tile a layout that keeps every instruction's layout rule: a
random one where the rule leaves a choice (tiles created from memory or constants, iotas, elementwise results,
dot accumulators), the one the rule derives otherwise (reductions, casts, views, permutes), and a
``convert_layout`` where an operand's layout breaks the rule. Layouts already set are pinned and kept.
``execute_with_random_layouts`` runs a program without and with such layouts and asserts that both leave the
same bits in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from tilevm import ir
from tilevm.ir import Program, TileType
from tilevm.layout import MmaFragments, RegisterLayout, register_layout
from tilevm.passes import TILE_PASSES, infer_layouts
from tilevm.passes.infer_layouts import RULES, LayoutChooser, assign_layouts
from tilevm.runtime import jit
from tilevm.runtime.reference import execute

__all__ = [
    "RULES",
    "RandomChooser",
    "assign_random_layouts",
    "execute_with_layouts",
    "execute_with_random_layouts",
    "launch_through",
    "random_layout",
]

#: the Tile IR passes before layout inference: launches compiled with only these reach the executor
#: without layouts, so that a test can lay the program out itself
PASSES_BEFORE_LAYOUTS = TILE_PASSES[: TILE_PASSES.index(infer_layouts)]


def launch_through(monkeypatch, execute_function: Callable[..., None]) -> None:
    """Make kernel launches compile without layout inference and run on the reference executor's contract
    through ``execute_function`` (which lays programs out as a test wants)."""
    monkeypatch.setattr(jit, "TILE_PASSES", PASSES_BEFORE_LAYOUTS)
    monkeypatch.setattr(jit, "execute_reference", execute_function)
    monkeypatch.setenv(jit.CPU_EXECUTOR_VARIABLE, "reference")


# tries at a random operand layout whose view keeps each thread's bits, before falling back to replication
VIEW_TRIES = 8


def random_layout(shape: Sequence[int], num_threads: int, rng: np.random.Generator) -> RegisterLayout:
    """A random layout of ``shape`` over exactly ``num_threads`` threads: every prime factor of every dim is a
    thread or a local digit, in random order, and threads left over replicate.

    >>> layout = random_layout((12, 8), 128, np.random.default_rng(0))
    >>> layout.shape, layout.num_threads
    ((12, 8), 128)
    """
    mode_shape: list[int] = []
    for extent in shape:
        factors = _prime_factors(extent)
        rng.shuffle(factors)
        mode_shape += factors
    spatial, locals_, threads = [], [], 1
    for mode in rng.permutation(len(mode_shape)).tolist():
        size = mode_shape[mode]
        if num_threads % (threads * size) == 0 and rng.random() < 0.6:
            spatial.append(mode)
            threads *= size
        else:
            locals_.append(mode)
    if num_threads > threads:
        spatial.insert(int(rng.integers(len(spatial) + 1)), -(num_threads // threads))
    return register_layout(tuple(shape), mode_shape, spatial, locals_)


def _prime_factors(extent: int) -> list[int]:
    factors, divisor = [], 2
    while extent > 1:
        while extent % divisor == 0:
            factors.append(divisor)
            extent //= divisor
        divisor += 1
    return factors


def assign_random_layouts(program: Program, rng: np.random.Generator) -> Program:
    """``program`` with a layout on every register tile, following each instruction's layout rule, with
    every choice the rules leave open made at random."""
    return assign_layouts(program, RandomChooser(program.num_threads, rng))


class RandomChooser(LayoutChooser):
    """The open choices of layout inference made at random."""

    def __init__(self, num_threads: int, rng: np.random.Generator) -> None:
        super().__init__(num_threads)
        self.rng = rng

    def fresh(self, tile: TileType, demanded: RegisterLayout | None = None) -> RegisterLayout:
        if demanded is not None and self.rng.random() < 0.5:
            return demanded
        return random_layout(tile.shape, self.num_threads, self.rng)

    def global_access(self, tile: TileType, contiguous_dim: int) -> RegisterLayout:
        return self.fresh(tile)

    def elementwise(self, result: TileType, operands: Sequence[TileType]) -> RegisterLayout:
        return self.fresh(result)

    def dot_atom(self, fitting: Sequence[MmaFragments]) -> MmaFragments | None:
        if fitting and self.rng.random() < 0.5:
            return fitting[int(self.rng.integers(len(fitting)))]
        return None

    def quotient(self, shape: tuple[int, int], num_groups: int) -> RegisterLayout:
        return random_layout(shape, num_groups, self.rng)

    def view_candidates(self, operand: TileType) -> list[RegisterLayout]:
        # tries at a random operand layout whose view keeps each thread's bits, before replicating
        return [operand.layout] + [self.fresh(operand) for _ in range(VIEW_TRIES)]


def execute_with_random_layouts(
    program: Program,
    arguments: Sequence[object],
    grid: tuple[int, ...],
    seed: int = 0,
    while_limit: int | None = None,
) -> None:
    """``execute`` the program on ``arguments``, and a copy with random layouts (seeded by ``seed``) on a
    copy of them; assert that both leave the same bits in every tensor's storage."""
    rng = np.random.default_rng(seed)
    execute_with_layouts(program, lambda p: assign_random_layouts(p, rng), arguments, grid, seed, while_limit)


def execute_with_layouts(
    program: Program,
    lay_out: Callable[[Program], Program],
    arguments: Sequence[object],
    grid: tuple[int, ...],
    seed: int = 0,
    while_limit: int | None = None,
) -> Program:
    """``execute`` the program on ``arguments``, and ``lay_out(program)``, verified, on a copy of them;
    assert that both leave the same bits in every tensor's storage; return the laid-out program."""
    copies = _copy_storages(arguments)
    # first, so that a test expecting an error gets it from here
    execute(program, arguments, grid, seed, while_limit)
    laid_out = ir.verify(lay_out(program))
    execute(laid_out, copies, grid, seed, while_limit)
    for position, (original, copy) in enumerate(zip(arguments, copies)):
        if isinstance(original, torch.Tensor):
            expected, actual = _bytes(original), _bytes(copy)
            assert np.array_equal(expected, actual), (
                f"{program.name}: argument {position} differs with layouts\n{ir.print_program(laid_out)}"
            )
    return laid_out


def _copy_storages(arguments: Sequence[object]) -> list[object]:
    """The arguments, each tensor over a copy of its storage (tensors sharing a storage share the copy)."""
    storages: dict[int, torch.UntypedStorage] = {}
    copies = []
    for value in arguments:
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            copy = storages.setdefault(storage.data_ptr(), storage.clone())
            value = torch.empty(0, dtype=value.dtype).set_(
                copy, value.storage_offset(), value.size(), value.stride()
            )
        copies.append(value)
    return copies


def _bytes(tensor: torch.Tensor) -> np.ndarray:
    return torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage()).numpy()

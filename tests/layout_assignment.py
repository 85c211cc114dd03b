"""Random layouts for every register tile of a program, and a check that they change nothing it computes.

``assign_random_layouts`` gives each register tile a layout that keeps every instruction's layout rule: a
random one where the rule leaves a choice (tiles created from memory or constants, iotas, elementwise results,
dot accumulators), the one the rule derives otherwise (reductions, casts, views, permutes), and a
``convert_layout`` where an operand's layout breaks the rule. Layouts already set are pinned and kept.
``execute_with_random_layouts`` runs a program without and with such layouts and asserts that both leave the
same bits in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from tilevm import ir
from tilevm.ir import (
    AllocRegister,
    Arange,
    AssignTensor,
    Binary,
    Cast,
    ConvertLayout,
    Dot,
    Instruction,
    LoadGlobal,
    LoadShared,
    Permute,
    Program,
    Reduce,
    TileType,
    Unary,
    Var,
    View,
    Where,
)
from tilevm.layout import (
    RegisterLayout,
    broadcast_layout,
    local,
    mma_fragments,
    register_layout,
    replicated,
    view_layout,
)
from tilevm.layout.mma import DTYPE_NAMES, MMA_OPERANDS
from tilevm.runtime.reference import execute

__all__ = ["RULES", "assign_random_layouts", "execute_with_random_layouts", "random_layout"]

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
    """``program`` with a layout on every register tile, following each instruction's layout rule."""
    assigner = _Assigner(program.num_threads, rng)
    return dataclasses.replace(program, body=assigner.body(program.body))


class _Assigner:
    def __init__(self, num_threads: int, rng: np.random.Generator) -> None:
        self.num_threads = num_threads
        self.rng = rng
        self.renamed: dict[int, Var] = {}
        self.emitted: list[Instruction] = []

    def body(self, body: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
        outer, self.emitted = self.emitted, []
        for instruction in body:
            RULES[type(instruction)](self, self.substitute(instruction))
        emitted, self.emitted = self.emitted, outer
        return tuple(emitted)

    def substitute(self, instruction: Instruction) -> Instruction:
        """The instruction reading the laid-out tiles, with its nested bodies laid out."""
        changes = {}
        for item in dataclasses.fields(instruction):
            value = getattr(instruction, item.name)
            if isinstance(value, Var) and value.uid in self.renamed:
                changes[item.name] = self.renamed[value.uid]
            elif isinstance(value, tuple) and value and isinstance(value[0], Instruction):
                changes[item.name] = self.body(value)
        return dataclasses.replace(instruction, **changes)

    def random(self, shape: Sequence[int]) -> RegisterLayout:
        return random_layout(shape, self.num_threads, self.rng)

    def convert(self, value: object, layout: RegisterLayout) -> object:
        """``value`` in ``layout``: itself when it has it (or is a scalar), else through a convert_layout."""
        if not isinstance(value, Var) or not isinstance(value.type, TileType) or value.type.layout == layout:
            return value
        converted = Var(value.name, value.type.with_layout(layout))
        self.emitted.append(ConvertLayout(output=converted, operand=value, loc=None))
        return converted

    def define(self, instruction: Instruction, layout: RegisterLayout, field: str = "output") -> None:
        """Emit ``instruction`` with its output in ``layout``; a pinned output layout is reached through a
        convert_layout after it."""
        output: Var = getattr(instruction, field)
        pinned = output.type.layout
        laid_out = Var(output.name, output.type.with_layout(layout))
        self.emitted.append(dataclasses.replace(instruction, **{field: laid_out}))
        if pinned is not None and pinned != layout:
            laid_out = self.convert(laid_out, pinned)
        self.renamed[output.uid] = laid_out

    def chosen(self, output: Var) -> RegisterLayout:
        """The output's pinned layout, or a random one."""
        return output.type.layout or self.random(output.type.shape)


def _keep(assigner: _Assigner, instruction: Instruction) -> None:
    assigner.emitted.append(instruction)


def _fresh(assigner: _Assigner, instruction: Instruction) -> None:
    assigner.define(instruction, assigner.chosen(instruction.output))


def _elementwise(assigner: _Assigner, instruction: Instruction) -> None:
    result = assigner.chosen(instruction.output)
    changes = {}
    for name in ("operand", "lhs", "rhs", "condition", "on_true", "on_false"):
        value = getattr(instruction, name, None)
        if isinstance(value, Var) and isinstance(value.type, TileType):
            changes[name] = assigner.convert(value, broadcast_layout(result, value.type.shape))
    assigner.define(dataclasses.replace(instruction, **changes), result)


def _reduce(assigner: _Assigner, instruction: Reduce) -> None:
    keepdim = instruction.keepdim or instruction.operand.type.rank == 1
    assigner.define(instruction, instruction.operand.type.layout.reduce(instruction.dim, keepdim=keepdim))


def _cast(assigner: _Assigner, instruction: Cast) -> None:
    assigner.define(instruction, instruction.operand.type.layout)


def _permute(assigner: _Assigner, instruction: Permute) -> None:
    assigner.define(instruction, instruction.operand.type.layout.permute(instruction.dims))


def _assign(assigner: _Assigner, instruction: AssignTensor) -> None:
    value = assigner.convert(instruction.value, instruction.destination.type.layout)
    assigner.emitted.append(dataclasses.replace(instruction, value=value))


def _view(assigner: _Assigner, instruction: View) -> None:
    operand = instruction.operand
    bits = operand.type.dtype.nbits, instruction.dtype.nbits
    candidates = [operand.type.layout] + [assigner.random(operand.type.shape) for _ in range(VIEW_TRIES)]
    # every thread holding the whole tile keeps its bits under any view
    candidates.append(replicated(assigner.num_threads) * local(*operand.type.shape))
    for candidate in candidates:
        result = view_layout(candidate, *bits, instruction.shape)
        if result is not None:
            operand = assigner.convert(operand, candidate)
            assigner.define(dataclasses.replace(instruction, operand=operand), result)
            return


def _dot(assigner: _Assigner, instruction: Dot) -> None:
    (m, k), n = instruction.a.type.shape, instruction.b.type.shape[1]
    name = DTYPE_NAMES.get(str(instruction.a.type.dtype), str(instruction.a.type.dtype))
    # the mma shapes whose atoms tile these shapes, and the scalar atom; one picked at random
    shapes = [shape for shape, types in MMA_OPERANDS.items() if name in types]
    atoms = [mma_fragments(shape, name) for shape in shapes]
    fitting = [a for a in atoms if m % a.c.shape[0] == 0 and n % a.c.shape[1] == 0 and k % a.a.shape[1] == 0]
    atom = None
    if fitting and assigner.rng.random() < 0.5:
        atom = fitting[int(assigner.rng.integers(len(fitting)))]
    atom_m, atom_n, atom_k = (1, 1, 1) if atom is None else (*atom.c.shape, atom.a.shape[1])
    groups = assigner.num_threads // (1 if atom is None else 32)
    quotient = random_layout((m // atom_m, n // atom_n), groups, assigner.rng)
    layouts = {
        "a": quotient.reduce(1) * local(1, k // atom_k),
        "b": local(k // atom_k, 1) * quotient.reduce(0),
        "accumulator": quotient,
    }
    if atom is not None:
        fragments = {"a": atom.a, "b": atom.b, "accumulator": atom.c}
        layouts = {key: layout * fragments[key] for key, layout in layouts.items()}
    changes = {key: assigner.convert(getattr(instruction, key), layout) for key, layout in layouts.items()}
    assigner.define(dataclasses.replace(instruction, **changes), layouts["accumulator"])


RULES: dict[type[Instruction], Callable[..., None]] = {
    **{kind: _keep for kind in ir.INSTRUCTION_CLASSES},
    AllocRegister: _fresh,
    LoadGlobal: _fresh,
    LoadShared: _fresh,
    Arange: _fresh,
    ConvertLayout: _fresh,
    Unary: _elementwise,
    Binary: _elementwise,
    Where: _elementwise,
    Reduce: _reduce,
    Cast: _cast,
    Permute: _permute,
    View: _view,
    Dot: _dot,
    AssignTensor: _assign,
}


def execute_with_random_layouts(
    program: Program,
    arguments: Sequence[object],
    grid: tuple[int, ...],
    seed: int = 0,
    while_limit: int | None = None,
) -> None:
    """``execute`` the program on ``arguments``, and a copy with random layouts (seeded by ``seed``) on a
    copy of them; assert that both leave the same bits in every tensor's storage."""
    copies = _copy_storages(arguments)
    # first, so that a test expecting an error gets it from here
    execute(program, arguments, grid, seed, while_limit)
    laid_out = ir.verify(assign_random_layouts(program, np.random.default_rng(seed)))
    execute(laid_out, copies, grid, seed, while_limit)
    for position, (original, copy) in enumerate(zip(arguments, copies)):
        if isinstance(original, torch.Tensor):
            expected, actual = _bytes(original), _bytes(copy)
            assert np.array_equal(expected, actual), (
                f"{program.name}: argument {position} differs with layouts\n{ir.print_program(laid_out)}"
            )


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

"""What a block-uniform scalar atomic becomes: in Thread IR one ``atomic`` per block, run by thread 0 between
two fences, inside barriers, its old value broadcast through shared memory; in PTX, for sm_80 and sm_90, the
same ``atom`` guarded by a branch on ``%tid.x``, between ``fence.acq_rel.gpu`` and ``bar.sync``. And the
errors of the DSL functions, at their lines."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import tilevm as tv
from tilevm.ir import print_program
from tilevm.ir.expr import BinaryExpr, Const
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.stmt import If, LetScalar
from tilevm.ir.thread import THREAD_IR, Atomic, ThreadIndex
from tilevm.passes.filecheck import filecheck


def line_of(function, marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(offset for offset, text in enumerate(lines) if marker in text)


@tv.kernel(num_warps=4)
def last_block_flags(counters: tv.Tensor[tv.int32, 1], flags: tv.Tensor[tv.int32, 1], BLOCKS: tv.constexpr):
    """Each block takes a ticket; the last one resets the counter and raises its flag."""
    tile = tv.block_idx(1)
    ticket = tv.atomic_add_scalar(counters, tile, 1)
    if ticket == BLOCKS - 1:
        tv.atomic_exchange_scalar(counters, tile, 0)
        tv.store_global(flags, tv.register_tensor(tv.int32, [1], init=1), offsets=[tile])


def arguments() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(3, dtype=torch.int32), torch.zeros(3, dtype=torch.int32)


def test_the_thread_ir_has_one_atomic_a_block_run_by_thread_0_between_fences_and_barriers():
    program = last_block_flags.thread_ir(*arguments(), BLOCKS=4)
    filecheck(
        print_program(program, THREAD_IR),
        """
        CHECK: %TID: int32 = let(value=thread_index())
        CHECK: trap(condition=not((%TILE >= 0) & (%TILE < %SIZE)), message="atomic_scalar of counters{{.*}}")
        CHECK-NEXT: %COUNTER: ptr<int32> = let(value=pointer_add(%COUNTERS, %TILE * 4))
        CHECK-NEXT: barrier()
        CHECK-NEXT: if %TID == 0 {
        CHECK-NEXT: fence()
        CHECK-NEXT: %OLD: int32 = atomic(op="add", pointer=%COUNTER, value=1)
        CHECK-NEXT: fence()
        CHECK-NEXT: store(pointer=shared_pointer<int32>(0), value=%OLD)
        CHECK-NEXT: }
        CHECK-NEXT: barrier()
        CHECK-NEXT: %BROADCAST: int32 = load(pointer=shared_pointer<int32>(0), width=4)
        CHECK-NEXT: %TICKET: int32 = let(value=%BROADCAST)
        CHECK-NEXT: if %TICKET == 3 {
        CHECK: barrier()
        CHECK-NEXT: if %TID == 0 {
        CHECK-NEXT: fence()
        CHECK-NEXT: atomic(op="exchange", pointer=%COUNTER2, value=0)
        CHECK-NEXT: fence()
        """,
    )
    instructions = list(walk_instructions(program.body))
    (tid,) = [let.output for let in instructions if isinstance(let, LetScalar) and let.value == ThreadIndex()]
    atomics = [instruction for instruction in instructions if isinstance(instruction, Atomic)]
    guarded = [
        atomic
        for branch in instructions
        if isinstance(branch, If) and branch.condition == BinaryExpr("eq", tid, Const(0))
        for atomic in branch.then_body
        if isinstance(atomic, Atomic)
    ]
    assert len(atomics) == 2 and guarded == atomics  # one per scalar atomic, each in a thread-0 branch


@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_the_ptx_has_one_atom_guarded_by_the_thread_index_between_fences(target):
    ptx = last_block_flags.ptx(*arguments(), target=target, BLOCKS=4)
    lines = [" ".join(line.split()) for line in ptx.splitlines()]  # single spaces
    atoms = [index for index, line in enumerate(lines) if line.startswith("atom.")]
    assert [lines[index].split()[0] for index in atoms] == ["atom.global.add.u32", "atom.global.exch.b32"]
    (tid,) = re.findall(r"mov\.u32\s+(%r\d+), %tid\.x;", ptx)
    for atom in atoms:
        assert lines[atom - 1] == lines[atom + 1] == "fence.acq_rel.gpu;"
        barrier = max(index for index in range(atom) if lines[index] == "bar.sync 0;")
        # between the barrier and the atom, the branch around the thread-0 block, taken by every other thread
        (predicate, label) = next(
            match.groups()
            for line in lines[barrier:atom]
            if (match := re.fullmatch(r"@(%p\d+) bra\s+(\$L__BB\d+_\d+);", line))
        )
        assert any(re.fullmatch(rf"setp\.ne\.[bsu]32\s+{predicate}, {tid}, 0;", line) for line in lines)
        # after it, the old value to shared memory, the end of the branch and the barrier
        assert lines[atom + 2].startswith("st.shared.") and lines[atom + 3] == f"{label}:"
        assert lines[atom + 4] == "bar.sync 0;"
    # every thread reads the ticket after the barrier (the exchange's old value is unused: its load is gone)
    assert lines[atoms[0] + 5].startswith("ld.shared.")


# -- errors --------------------------------------------------------------------------------------------------


@tv.kernel
def too_few_indices(x: tv.Tensor[tv.int32, 2]):
    tv.atomic_add_scalar(x, 0, 1)  # marker


@tv.kernel
def float_counter(x: tv.Tensor[tv.float32, 1]):
    tv.atomic_add_scalar(x, 0, 1.0)  # marker


@tv.kernel
def narrow_counter(x: tv.Tensor[tv.int16, 1]):
    tv.atomic_max_scalar(x, 0, 1)  # marker


@tv.kernel
def float_value(x: tv.Tensor[tv.int32, 1]):
    tv.atomic_add_scalar(x, 0, 1.5)  # marker


@tv.kernel
def wider_value(x: tv.Tensor[tv.int32, 1], step: tv.int64):
    tv.atomic_exchange_scalar(x, 0, step)  # marker


@tv.kernel
def tile_value(x: tv.Tensor[tv.int32, 1]):
    tv.atomic_min_scalar(x, 0, tv.arange(4))  # marker


@tv.kernel
def float_index(x: tv.Tensor[tv.int32, 1]):
    tv.atomic_add_scalar(x, 1.5, 1)  # marker


@tv.kernel
def of_a_tile(x: tv.Tensor[tv.int32, 1]):
    tv.atomic_add_scalar(tv.load_global(x, offsets=[0], shape=[4]), 0, 1)  # marker


#: each kernel above, the scalar argument it takes besides its tensor, and its error
ERRORS = [
    (too_few_indices, (), "atomic_add_scalar of a rank-2 tensor takes 2 indices (one per dimension) then "
                          "the value: 3 arguments after the tensor, got 2"),
    (float_counter, (), "atomic_scalar acts on int32, uint32, int64, uint64 tensors, got a float32 tensor"),
    (narrow_counter, (), "atomic_scalar acts on int32, uint32, int64, uint64 tensors, got a int16 tensor"),
    (float_value, (), "cannot use the Python float 1.5 as a int32 value"),
    (wider_value, (3,), "atomic_scalar of a int64 value into a int32 tensor; cast it first"),
    (tile_value, (), "atomic_scalar's value must be a scalar, got register tile int32[4]"),
    (float_index, (), "atomic_add_scalar's index[0] must be an integer, got the Python float 1.5"),
    (of_a_tile, (), "atomic_add_scalar cannot take a register tile int32[4]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kernel", "extra", "message"), ERRORS, ids=[kernel.function.__name__ for kernel, _, _ in ERRORS]
)
def test_errors_name_what_is_wrong_at_the_users_line(kernel, extra, message):
    dtypes = {"too_few_indices": torch.int32, "float_counter": torch.float32, "narrow_counter": torch.int16}
    dtype = dtypes.get(kernel.function.__name__, torch.int32)
    tensor = torch.zeros((4, 4) if kernel is too_few_indices else (4,), dtype=dtype)
    with pytest.raises(tv.CompilationError) as caught:
        kernel.ir(tensor, *extra)
    assert caught.value.message == message
    assert caught.value.location.line == line_of(kernel.function, "marker")

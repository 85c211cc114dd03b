"""Batched dots, ``a [*B, m, k] @ b [*B, k, n] + accumulator [*B, m, n]``, at compile time: the type rule, the
layout rule (``tilevm.layout.dot_atom``, checked against which elements each thread holds), the verifier,
the layouts inference chooses (warps along the batch dims, no conversion in the split-k pattern) and what the
lowering emits (an mma per batch index and atom; the sum over the batch dim through one round trip in shared
memory). ``test_dot_batched_run`` runs them."""

import numpy as np
import pytest
import torch
from layout_assignment import random_layout
from lowering import lower
from test_lang_errors import compile_error, line_of

import tilevm as tv
from tilevm import ir
from tilevm.dtypes import float16, float32
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import AllocRegister, IRTypeError, Program, Scope, TileType, Var
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.stmt import For
from tilevm.ir.thread import Barrier, Load, Mma, SharedPointer, Shuffle, Store
from tilevm.layout import SCALAR_ATOM, dot_atom, local, mma_fragments, replicated, spatial

HERE = SourceLocation("kernel.py", 7, 4)
F16 = mma_fragments("m16n8k16", "f16")
I8 = mma_fragments("m16n8k32", "int8")


def dot_layouts(quotient, fragments, k_atoms: int):
    """The layouts of a, b and the accumulator made of ``fragments`` spread by ``quotient`` over the batch
    dims and the atoms' rows and columns, ``k_atoms`` atoms deep (the rule's own construction)."""
    ones = (1,) * (quotient.rank - 2)
    return (
        quotient.reduce(-1) * local(*ones, 1, k_atoms) * fragments.a,
        local(*ones, k_atoms, 1) * quotient.reduce(-2) * fragments.b,
        quotient * fragments.c,
    )


# -- the type rule -----------------------------------------------------------------------------------------


def tile(dtype, shape, layout=None):
    return Var("t", TileType(dtype, tuple(shape), Scope.REGISTER, layout))


def dot_type(a_shape, b_shape, accumulator_shape):
    dot = ir.Dot(
        output=tile(float32, accumulator_shape),
        a=tile(float16, a_shape),
        b=tile(float16, b_shape),
        accumulator=tile(float32, accumulator_shape),
    )
    return dot.result_type()


def test_the_result_has_the_accumulators_batch_dims():
    assert dot_type((4, 16, 32), (4, 32, 8), (4, 16, 8)).shape == (4, 16, 8)
    assert dot_type((2, 3, 5, 7), (2, 3, 7, 4), (2, 3, 5, 4)).shape == (2, 3, 5, 4)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (
            ((4, 16, 32), (2, 32, 8), (4, 16, 8)),
            "dot batch dims do not match (they do not broadcast): a [4], b [2], accumulator [4]",
        ),
        (
            ((4, 16, 32), (4, 32, 8), (1, 16, 8)),
            "dot batch dims do not match (they do not broadcast): a [4], b [4], accumulator [1]",
        ),
        (
            ((4, 16, 32), (32, 8), (4, 16, 8)),
            "dot needs tiles a [*B, m, k], b [*B, k, n] and accumulator [*B, m, n] of one rank, at least 2, "
            "with the same leading batch dims B; got a [4, 16, 32], b [32, 8], accumulator [4, 16, 8]",
        ),
        (
            ((16,), (16,), (1,)),
            "dot needs tiles a [*B, m, k], b [*B, k, n] and accumulator [*B, m, n] of one rank, at least 2, "
            "with the same leading batch dims B; got a [16], b [16], accumulator [1]",
        ),
        (
            ((4, 16, 32), (4, 16, 8), (4, 16, 8)),
            "dot shapes do not match: a [4, 16, 32], b [4, 16, 8], accumulator [4, 16, 8]",
        ),
    ],
)
def test_mismatched_shapes_are_type_errors(shapes, message):
    with pytest.raises(IRTypeError) as caught:
        dot_type(*shapes)
    assert str(caught.value) == message


def test_a_dsl_dot_of_mismatched_batch_dims_points_at_the_users_line():
    @tv.kernel(num_warps=4)
    def bad_dot(x: tv.Tensor):
        a = tv.register_tensor(tv.float16, [4, 16, 32], init=1.0)
        b = tv.register_tensor(tv.float16, [2, 32, 8], init=1.0)
        acc = tv.register_tensor(tv.float32, [4, 16, 8], init=0.0)
        acc = tv.dot(a, b, acc)  # marker

    error = compile_error(bad_dot, torch.zeros(4))
    assert (
        error.message == "dot batch dims do not match (they do not broadcast): a [4], b [2], accumulator [4]"
    )
    assert error.location.line == line_of(bad_dot, "marker")


# -- the layout rule ---------------------------------------------------------------------------------------


def holds_its_operands(a, b, accumulator) -> bool:
    """Whether every thread holding accumulator[*batch, i, j] holds all of a[*batch, i, :] and
    b[*batch, :, j]: one multiply-add per thread then needs nothing from another thread."""
    k = a.shape[-1]
    for thread in range(accumulator.num_threads):
        a_held = set(map(tuple, a.table()[thread].tolist()))
        b_held = set(map(tuple, b.table()[thread].tolist()))
        for *batch, i, j in accumulator.table()[thread].tolist():
            if not all((*batch, i, kk) in a_held and (*batch, kk, j) in b_held for kk in range(k)):
                return False
    return True


@pytest.mark.parametrize("seed", range(6))
def test_fma_layouts_the_rule_accepts_give_each_thread_its_operands(seed):
    rng = np.random.default_rng([seed, 31])
    batch = tuple(int(size) for size in rng.integers(1, 5, size=int(rng.integers(1, 3))))
    accumulator = random_layout((*batch, 4, 2), 64, rng)
    a, b, _ = dot_layouts(accumulator, SCALAR_ATOM, 3)
    assert dot_atom(a, b, accumulator, "float32") == "fma"
    assert holds_its_operands(a, b, accumulator)
    for _ in range(4):
        spread = random_layout((*batch, 4, 3), 64, rng)
        if not holds_its_operands(spread, b, accumulator):
            assert dot_atom(spread, b, accumulator, "float32") is None


@pytest.mark.parametrize(
    ("quotient", "fragments", "operand", "k_atoms", "atom"),
    [
        (spatial(4, 1, 1), F16, "float16", 2, "m16n8k16"),  # batch index w on warp w
        (spatial(4, 1, 1) * local(1, 1, 4), F16, "bfloat16", 1, "m16n8k16"),
        (local(3, 1, 1) * spatial(1, 2, 2), F16, "float16", 2, "m16n8k16"),  # batch in each warp's locals
        (local(2, 1, 1) * spatial(2, 1, 2), I8, "int8", 1, "m16n8k32"),  # batch on warps and locals
        (replicated(2) * spatial(2, 1, 1), F16, "float16", 1, "m16n8k16"),  # two warps hold each index
        (spatial(2, 3, 1, 1), F16, "float16", 1, "m16n8k16"),  # two batch dims
        (local(2, 1, 1) * spatial(4, 8, 4), SCALAR_ATOM, "float32", 5, "fma"),
    ],
    ids=str,
)
def test_batch_dims_spread_alike_in_the_three_layouts_fit_an_atom(
    quotient, fragments, operand, k_atoms, atom
):
    assert dot_atom(*dot_layouts(quotient, fragments, k_atoms), operand) == atom


def test_batch_digits_that_differ_between_the_operands_fit_no_atom():
    a, b, accumulator = dot_layouts(spatial(4, 1, 1), F16, 2)  # batch on warps
    _, b_local, accumulator_local = dot_layouts(local(4, 1, 1) * spatial(1, 1, 4), F16, 2)  # warps on n
    assert dot_atom(a, b_local, accumulator_local, "float16") is None
    assert dot_atom(a, b, accumulator_local, "float16") is None
    assert dot_atom(a, b_local, accumulator, "float16") is None
    # the same digits, in another order over the warps
    swapped_a, _, _ = dot_layouts(spatial(2, 1, 1) * replicated(2), F16, 1)
    _, swapped_b, swapped_accumulator = dot_layouts(replicated(2) * spatial(2, 1, 1), F16, 1)
    assert dot_atom(swapped_a, swapped_b, swapped_accumulator, "float16") is None


def test_k_over_warps_fits_no_atom_with_or_without_batch_dims():
    # a split of k between warps is a batch dim, not warps along k: the atom would need other warps' sums
    k_over_warps = spatial(1, 4) * F16.a, spatial(4, 1) * F16.b, replicated(4) * F16.c
    assert dot_atom(*k_over_warps, "float16") is None
    batched = spatial(2, 1, 2) * F16.a, spatial(2, 2, 1) * F16.b, spatial(2, 1, 1).replicated(2) * F16.c
    assert dot_atom(*batched, "float16") is None
    # the fma atom: k over a thread digit
    assert dot_atom(spatial(2, 1, 4), spatial(2, 4, 1), spatial(2, 1, 1).replicated(4), "float32") is None


def test_operands_of_another_rank_fit_no_atom():
    a, b, accumulator = dot_layouts(spatial(4, 1, 1), F16, 1)
    assert dot_atom(a, b, accumulator, "float16") == "m16n8k16"
    assert dot_atom(a, b, replicated(4) * F16.c, "float16") is None  # the accumulator without the batch


def test_the_verifier_names_the_layouts_of_a_batched_dot_that_fits_no_atom():
    a, b, _ = dot_layouts(spatial(4, 1, 1) * local(1, 1, 4), F16, 2)  # batch on warps
    other = (local(4, 1, 1) * spatial(1, 1, 4)) * F16.c  # warps on n
    tiles = tile(float16, (4, 16, 32), a), tile(float16, (4, 32, 32), b), tile(float32, (4, 16, 32), other)
    body = tuple(
        AllocRegister(output=value, dtype=value.type.dtype, shape=value.type.shape, init=None, loc=HERE)
        for value in tiles
    )
    dot = ir.Dot(
        output=tile(float32, (4, 16, 32), other), a=tiles[0], b=tiles[1], accumulator=tiles[2], loc=HERE
    )
    with pytest.raises(CompilationError) as caught:
        ir.verify(Program("k", (), 128, (*body, dot)))
    assert caught.value.message.startswith(
        f"dot: the layouts of a ({a}), b ({b}) and the accumulator ({other}) fit no float16 dot atom; "
    )
    assert caught.value.location == HERE


# -- the split-k pattern: layouts and lowering -------------------------------------------------------------


@tv.kernel(num_warps=4)
def split_k_through_shared(
    x: tv.Tensor, w: tv.Tensor, y: tv.Tensor, SPLIT: tv.constexpr, KW: tv.constexpr, BN: tv.constexpr
):
    """``y = x @ w`` for ``x`` given as ``[K / KW, M, KW]`` (slice ``s`` of k, all rows) and ``w`` as
    ``[K / KW, KW, N]``: each iteration, batch index ``s`` of the dot multiplies the s-th of ``SPLIT``
    slices of k, and the partial products are summed once after the loop."""
    n0 = tv.block_idx() * BN
    acc = tv.register_tensor(tv.float32, [SPLIT, 16, BN], init=0.0)
    xs = tv.shared_tensor(tv.float16, [SPLIT, 16, KW])
    ws = tv.shared_tensor(tv.float16, [SPLIT, KW, BN])
    for slice_start in range(0, x.shape[0], SPLIT):
        tv.copy_async(xs, x, offsets=[slice_start, 0, 0])
        tv.copy_async(ws, w, offsets=[slice_start, 0, n0])
        tv.copy_async_commit()
        tv.copy_async_wait()
        tv.sync()
        acc = tv.dot(tv.load_shared(xs), tv.load_shared(ws), acc)
        tv.sync()
    tv.store_global(y, tv.cast(tv.sum(acc, dim=0), tv.float16), offsets=[0, n0])


@tv.kernel(num_warps=4)
def split_k_from_registers(
    x: tv.Tensor, w: tv.Tensor, y: tv.Tensor, SPLIT: tv.constexpr, BN: tv.constexpr, LAYOUTS: tv.constexpr
):
    """``split_k_through_shared`` with ``SPLIT`` slices of k, loaded from global memory straight into the
    pinned ``LAYOUTS`` of a and b (as a kernel that reads pre-laid-out weights does), and the accumulator in
    the third layout of ``LAYOUTS`` (None: inferred)."""
    layout_a, layout_b, layout_acc = LAYOUTS
    kw = layout_a.shape[-1]
    n0 = tv.block_idx() * BN
    acc = tv.register_tensor(tv.float32, [SPLIT, 16, BN], init=0.0, layout=layout_acc)
    for slice_start in range(0, x.shape[0], SPLIT):
        a = tv.load_global(x, offsets=[slice_start, 0, 0], shape=[SPLIT, 16, kw], layout=layout_a)
        b = tv.load_global(w, offsets=[slice_start, 0, n0], shape=[SPLIT, kw, BN], layout=layout_b)
        acc = tv.dot(a, b, acc)
    tv.store_global(y, tv.cast(tv.sum(acc, dim=0), tv.float16), offsets=[0, n0])


def split_k_operands(m: int, n: int, k: int, kw: int, seed: int):
    """Small-integer ``x [m, k]`` and ``w [k, n]`` in float16 (every partial sum exact in float32), ``x`` as
    ``[k / kw, m, kw]`` and ``w`` as ``[k / kw, kw, n]`` views, and a NaN-poisoned ``y [m, n]``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (m, k), generator=generator).half()
    w = torch.randint(-3, 4, (k, n), generator=generator).half()
    y = torch.full((m, n), float("nan")).half()
    return x, w, x.view(m, k // kw, kw).permute(1, 0, 2), w.view(k // kw, kw, n), y


def warps_on_the_batch_dim(split: int, kw: int, bn: int):
    """The layouts of a and b with batch index ``w`` on warp ``w`` (what a kernel author pins), and None for
    the accumulator's (inferred)."""
    a, b, _ = dot_layouts(spatial(split, 1, 1) * local(1, 1, bn // 8), F16, kw // 16)
    return a, b, None


def instructions(program, kind):
    return [instruction for instruction in walk_instructions(program.body) if isinstance(instruction, kind)]


def the_dot(program) -> ir.Dot:
    (dot,) = instructions(program, ir.Dot)
    return dot


@pytest.mark.parametrize("pinned", [False, True], ids=["through_shared", "pinned_loads"])
def test_the_split_k_pattern_puts_one_slice_on_each_warp_and_converts_nothing(pinned):
    _, _, x3, w3, y = split_k_operands(16, 64, 256, 32, seed=1)
    if pinned:
        program = split_k_from_registers.ir(
            x3, w3, y, SPLIT=4, BN=32, LAYOUTS=warps_on_the_batch_dim(4, 32, 32)
        )
    else:
        program = split_k_through_shared.ir(x3, w3, y, SPLIT=4, KW=32, BN=32)
    assert not instructions(program, ir.ConvertLayout)
    accumulator = the_dot(program).accumulator.type.layout
    assert accumulator == spatial(4, 1, 1) * local(1, 1, 4) * F16.c
    (total,) = instructions(program, ir.Reduce)
    assert total.output.type.layout == replicated(4) * local(1, 4) * F16.c  # every warp holds the sum


@pytest.mark.parametrize(
    ("split", "held"),
    [(1, [[0]] * 4), (2, [[0], [0], [1], [1]]), (3, [[0, 1, 2]] * 4), (8, [[0, 4], [1, 5], [2, 6], [3, 7]])],
)
def test_a_batch_of_another_size_than_the_warps_spreads_over_as_many_warps_as_divide_it(split, held):
    _, _, x3, w3, y = split_k_operands(16, 32, 16 * split, 16, seed=split)
    program = split_k_through_shared.ir(x3, w3, y, SPLIT=split, KW=16, BN=32)
    assert not instructions(program, ir.ConvertLayout)
    dot = the_dot(program)
    layouts = dot.a.type.layout, dot.b.type.layout, dot.accumulator.type.layout
    assert dot_atom(*layouts, "float16") == "m16n8k16"
    table = layouts[2].table()
    # the batch indices each warp holds (lane 0's; all its lanes hold the same)
    assert [sorted(set(table[32 * warp, :, 0].tolist())) for warp in range(4)] == held


def test_each_warp_multiplies_its_slice_and_the_slices_meet_once_in_shared_memory():
    _, _, x3, w3, y = split_k_operands(16, 64, 256, 32, seed=2)
    program = lower(split_k_through_shared.ir(x3, w3, y, SPLIT=4, KW=32, BN=32))
    (loop,) = [instruction for instruction in program.body if isinstance(instruction, For)]
    # a warp's slice [16, 32] @ [32, 32]: 4 atoms along n, 2 along k
    mma = instructions(loop, Mma)
    assert len(mma) == 8 and {instruction.shape for instruction in mma} == {"m16n8k16"}
    after = Program("after", (), 128, program.body[program.body.index(loop) + 1 :])
    # the sum over the slices: each thread's 16 float32 written once, the 4 warps' read back, no shuffle
    shared_stores = [
        store for store in instructions(after, Store) if isinstance(store.pointer, SharedPointer)
    ]
    assert len(instructions(after, Barrier)) == 2 and not instructions(after, Shuffle)
    assert [store.value.type.nbits for store in shared_stores] == [128] * 4
    assert [load.width for load in instructions(after, Load)] == [16] * 16


def test_operand_layouts_that_already_fit_the_accumulator_are_kept():
    a, chosen_b, _ = warps_on_the_batch_dim(4, 32, 32)
    # n's atoms before k's in each thread's registers: another layout, the same rule
    b = spatial(4, 1, 1) * local(1, 2, 4, order=[0, 2, 1]) * F16.b
    assert b != chosen_b
    _, _, x3, w3, y = split_k_operands(16, 64, 256, 32, seed=3)
    program = split_k_from_registers.ir(x3, w3, y, SPLIT=4, BN=32, LAYOUTS=(a, b, None))
    assert not instructions(program, ir.ConvertLayout)
    assert the_dot(program).b.type.layout == b


def test_a_pinned_accumulator_chooses_another_spread_and_operands_that_fit_it_are_kept():
    # the four slices in each warp's registers, the warps along n
    layouts = dot_layouts(local(4, 1, 1) * spatial(1, 1, 4), F16, 2)
    _, _, x3, w3, y = split_k_operands(16, 128, 256, 32, seed=4)
    program = split_k_from_registers.ir(x3, w3, y, SPLIT=4, BN=32, LAYOUTS=layouts)
    assert not instructions(program, ir.ConvertLayout)
    dot = the_dot(program)
    assert (dot.a.type.layout, dot.b.type.layout, dot.accumulator.type.layout) == layouts

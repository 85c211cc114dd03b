"""The swizzle chooser (``plan_shared_swizzle.choose_layouts``) against a brute-force one: every candidate
layout of every allocation, every warp request of every access rebuilt from scratch in the candidate's own
layout (its view's offset table, swizzle included), each request counted by ``tilevm.layout.bank_conflicts``
on its own, the first candidate with the fewest strict, then fewest total conflicts taken. The chooser
instead swizzles linear offsets it keeps per plan and counts stacks of requests at once: it must pick the
same layouts, on kernels whose accesses are ``ldmatrix`` (plain and transposed), ``cp.async`` chunks of 16
bytes and fewer, and vectors of 2 to 16 bytes (replicated stores included)."""

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.ir import CopyAsync, GlobalView, LoadShared, StoreShared
from tilevm.ir.rewrite import walk_instructions
from tilevm.lang.captures import Captures
from tilevm.lang.frontend import compile_kernel
from tilevm.layout import RegisterLayout, bank_conflicts, mma_fragments, spatial
from tilevm.layout.shared import SharedLayout, swizzle_candidates
from tilevm.passes import TILE_PASSES, CompileOptions, run_pipeline
from tilevm.passes.index_analysis import analyze_indices
from tilevm.passes.lower.copy_async import copy_plan, pointer_divisibility, resolve_copy, source_alignment
from tilevm.passes.lower.shared_access import ldmatrix_plan, vector_width
from tilevm.passes.plan_shared_memory import plan_shared_memory
from tilevm.passes.plan_shared_swizzle import _accesses, choose_layouts
from tilevm.runtime.binding import bind_arguments, describe_arguments

EXAMPLES = Path(__file__).parent.parent / "examples"
MMA = mma_fragments("m16n8k16", "f16")


@tv.kernel(num_warps=2)
def through_shared(
    x: tv.Tensor[tv.float16, 2], y: tv.Tensor[tv.float16, 2], STORE: tv.constexpr, LOAD: tv.constexpr
):
    tile = tv.shared_tensor(tv.float16, [32, 64])
    tv.store_shared(tile, tv.load_global(x, offsets=[0, 0], shape=[32, 64], layout=STORE))
    tv.sync()
    tv.store_global(y, tv.load_shared(tile, layout=LOAD), offsets=[0, 0])


@tv.kernel(num_warps=4)
def staged_copies(x: tv.Tensor, y: tv.Tensor, R: tv.constexpr, C: tv.constexpr, LOAD: tv.constexpr):
    """Two stages of an R x C tile of x filled by copy_async, read back in LOAD (transposed when LOAD is
    C x R)."""
    stages = tv.shared_tensor(x.dtype, [2, R, C])
    for stage in tv.static_range(2):
        tv.copy_async(tv.slice_shared(stages, [stage, 0, 0], [R, C]), x, offsets=[stage * R, 0])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    tile = tv.slice_shared(stages, [1, 0, 0], [R, C])
    if LOAD.shape[0] == R:
        tv.store_global(y, tv.load_shared(tile, layout=LOAD), offsets=[0, 0])
    else:
        tv.store_global(y, tv.load_shared(tile.T, layout=LOAD), offsets=[0, 0])


def before_planning(kernel, *args, **kwargs):
    """The kernel's Tile IR after every pass before ``plan_shared_memory``."""
    described = describe_arguments(bind_arguments(kernel.signature, args, kwargs), kernel.signature)
    program = compile_kernel(kernel.function, described, kernel.num_threads, Captures())
    assert TILE_PASSES[-1] is plan_shared_memory
    return run_pipeline(program, CompileOptions(verify_passes=True), TILE_PASSES[:-1])


def brute_force_layouts(program):
    """The layout of each allocation by the rule of ``plan_shared_swizzle``, counted the slow way."""
    analysis = analyze_indices(program)
    views = {item.output: item for item in walk_instructions(program.body) if isinstance(item, GlobalView)}
    chosen = {}
    for allocation, accesses in _accesses(program)[0].items():
        plain = allocation.placement()
        nbits = allocation.dtype.nbits
        candidates = swizzle_candidates(plain, nbits) if nbits in (8, 16, 32, 64, 128) else [plain]
        costs = []
        for candidate in candidates:
            strict = total = 0
            for access in accesses:
                layout, base = access.view.layout(candidate)
                requests = _requests(program, analysis, views, access.instruction, layout, nbits, base)
                for coordinates in requests:
                    offsets = layout.table()[tuple(np.moveaxis(coordinates, -1, 0))]
                    access_bytes = offsets.shape[1] * nbits // 8
                    if offsets.size == 0 or access_bytes not in (4, 8, 16):
                        continue
                    lanes = [(lane, 0) for lane in range(len(offsets))]  # row l: lane l's offsets
                    conflicts = bank_conflicts(_Rows(offsets), nbits, lanes, access_bytes)
                    total += conflicts
                    strict += conflicts if access_bytes == 16 else 0
            costs.append((strict, total))
        chosen[allocation.output.uid] = candidates[costs.index(min(costs))]
    return chosen


class _Rows:
    """Lane ``l``'s element offsets as row ``l`` of an offset table (what ``bank_conflicts`` reads)."""

    def __init__(self, offsets):
        self.offsets = offsets

    def table(self):
        return self.offsets


def _requests(program, analysis, views, instruction, layout, nbits, base):
    """``[lanes, elements, rank]``: the tile coordinates each lane touches, for every warp request that
    lowering makes of ``instruction`` in a view placed by ``layout``."""
    divisibility = analysis.of(base)
    if isinstance(instruction, CopyAsync):
        view = views[instruction.source]
        source = source_alignment(
            analysis.of, pointer_divisibility(program, view.pointer), nbits, instruction, view.strides
        )
        plan = copy_plan(layout.shape, nbits, layout, divisibility, source, program.num_threads)
        plan = resolve_copy(plan, nbits, analysis.of(view.shape[instruction.dims[plan.dim]]))
        if plan is None:
            return
        chunks = np.arange(plan.num_chunks)
        origins = np.stack(np.unravel_index(chunks, plan.chunk_shape), axis=-1)
        origins[:, plan.dim] *= plan.width
        for start in range(0, plan.rounds * plan.num_threads, 32):
            lanes = origins[start : min(start + 32, plan.num_chunks)]
            step = np.zeros(len(layout.shape), dtype=np.int64)
            step[plan.dim] = 1
            yield lanes[:, None, :] + np.arange(plan.width)[:, None] * step
        return
    value = instruction.output if isinstance(instruction, LoadShared) else instruction.value
    register = value.type.layout
    assert isinstance(register, RegisterLayout)
    table = register.table()  # [thread, local, rank]
    loads = isinstance(instruction, LoadShared)
    plan = ldmatrix_plan(register, layout, nbits, divisibility) if loads else None
    if plan is not None:
        quotient = plan.quotient.table()
        for warp in range(register.num_threads // 32):
            first = 0
            for count in plan.counts():
                lanes = np.arange(32)
                corner = 8 * quotient[warp, first + (lanes // 8) % count].astype(np.int64)
                corner[:, plan.row_dim] += lanes % 8
                along = np.zeros(2, dtype=np.int64)
                along[1 - plan.row_dim] = 1
                yield corner[:, None, :] + np.arange(8)[:, None] * along
                first += count
        return
    width = vector_width(register, layout, nbits, divisibility)
    owners = np.arange(register.num_threads)
    if isinstance(instruction, StoreShared):  # one replica stores: the first thread holding its elements
        first_holder = {}
        for thread in owners:
            first_holder.setdefault(table[thread].tobytes(), thread)
        owners = np.array([t for t in owners if first_holder[table[t].tobytes()] == t])
    for warp in range(-(-register.num_threads // 32)):
        lanes = owners[(owners >= 32 * warp) & (owners < 32 * warp + 32)]
        for group in range(register.local_size // width):
            yield table[lanes][:, group * width : (group + 1) * width]


def assert_same_choice(program):
    chosen = choose_layouts(program)
    assert chosen == brute_force_layouts(program)
    return chosen


def test_the_matmul_example_gets_the_brute_force_choice():
    module = runpy.run_path(str(EXAMPLES / "matmul_fp16.py"), run_name="example")
    a, b, c = torch.zeros(70, 200).half(), torch.zeros(200, 96).half(), torch.zeros(70, 96).half()
    program = before_planning(module["matmul"], a, b, c, BM=32, BN=32, BK=32, STAGES=2)
    chosen = assert_same_choice(program)
    # ldmatrix rows of 64-byte lines: two 16-byte units in each of 4 rows share banks without a swizzle
    assert len(chosen) == 2 and all(layout.swizzling is not None for layout in chosen.values())


@pytest.mark.parametrize(
    ("store", "load"),
    [
        (spatial(32, 2).local(1, 32), spatial(8, 8).local(4, 8)),  # 64-byte rows: stores conflict
        (spatial(16, 4).local(2, 16), spatial(2, 1).local(1, 4) * MMA.a),  # ldmatrix
        (spatial(8, 8).local(4, 8), spatial(8, 4).local(4, 16).replicated(2)),  # 32-byte runs
        (spatial(32, 1).local(1, 64).replicated(2), spatial(4, 16).local(8, 4)),  # replicas store once
        (spatial(8, 8).column_local(4, 8), spatial(2, 32).local(16, 2)),  # 4-byte vectors
    ],
)
def test_stores_and_loads_get_the_brute_force_choice(store, load):
    x, y = torch.zeros(32, 64).half(), torch.zeros(32, 64).half()
    assert_same_choice(before_planning(through_shared, x, y, STORE=store, LOAD=load))


def test_two_rows_of_64_bytes_a_phase_get_a_swizzle_of_the_line_halves():
    """16 bytes a lane, lanes 4g..4g+3 along row g (the mma B fragments of the qgemm's permuted k): a phase
    of 8 lanes reads 64 bytes of two rows, which every swizzle of the lowest 16-byte units leaves in the
    same banks; one that moves the row's parity onto the line's halves parts them (the tile is stored and
    read back in that layout)."""
    load = spatial(2, 1).local(2, 2).spatial(8, 4).local(1, 8)
    x, y = torch.zeros(32, 64).half(), torch.zeros(32, 64).half()
    program = before_planning(through_shared, x, y, STORE=load, LOAD=load)
    (layout,) = assert_same_choice(program).values()
    assert layout.swizzling.base > 3  # not a CUTLASS swizzle of the lowest units
    assert strict_conflicts(layout, load) == 0 < strict_conflicts(SharedLayout.row_major(32, 64), load)


def strict_conflicts(layout, load):
    """The extra wavefronts of the 16-byte loads of ``load`` (one vector of 8 float16 a lane and group)
    from a float16 tile placed by ``layout``, counted request by request with ``bank_conflicts``."""
    table = load.table()
    total = 0
    for warp in range(load.num_threads // 32):
        for group in range(load.local_size // 8):
            cells = table[32 * warp : 32 * warp + 32, 8 * group : 8 * group + 8]
            offsets = layout.table()[tuple(np.moveaxis(cells, -1, 0))]
            total += bank_conflicts(_Rows(offsets), 16, [(lane, 0) for lane in range(32)], 16)
    return total


@pytest.mark.parametrize(
    ("dtype", "rows", "cols", "load"),
    [
        (torch.float16, 32, 64, spatial(2, 2).local(1, 2) * MMA.a),  # 16-byte chunks, ldmatrix rows
        (torch.float16, 64, 32, spatial(2, 2).local(1, 4) * MMA.b),  # ldmatrix.trans of the transpose
        (torch.int8, 16, 128, spatial(8, 16).local(2, 8)),  # byte tiles: chunks of 16, vectors of 8
        (torch.float32, 16, 24, spatial(16, 8).local(1, 3)),  # rows of 96 bytes: no swizzle divides them
    ],
)
def test_copies_get_the_brute_force_choice(dtype, rows, cols, load):
    x = torch.zeros(2 * rows, cols, dtype=dtype)
    y = torch.zeros(*load.shape, dtype=dtype)
    assert_same_choice(before_planning(staged_copies, x, y, R=rows, C=cols, LOAD=load))

"""The quantized GEMM's prefill kernel (large M): ``out = X @ dequant(W).T (+ bias)`` with both operands
staged in shared memory by a ``copy_async`` pipeline.

As the decode kernel (``kernel``), it computes ``out.T = W @ X.T`` with ``mma.m16n8k16``, the dequantized
weight as operand A and X as operand B, and it reads the same pre-layout (``prelayout``). What changes at
large M is the reuse: a block computes a ``block_n x block_m`` tile of ``out.T`` (128 x 128 by default)
with its warps in a grid, ``n_warps`` across n and ``m_warps`` across m, each warp ``16 * n_tiles``
columns by ``8 * m_tiles`` rows. Every byte of W a block reads serves ``block_m`` rows of X, and every
value of X ``block_n`` columns of W, so the operands come from shared memory, where ``stages`` iterations
are in flight at once:

- an iteration waits for its stage's copies and syncs (one barrier an iteration: past it, every thread is
  done with the previous iteration's stage), then starts copying ``steps * chunks`` pre-layout chunks of
  the block's columns (``copy_async``: the packed bytes of a column group are contiguous), the
  ``[block_m, steps * kc]`` window of X and the rows of scales and zero points the iteration applies
  ``stages - 1`` iterations ahead, into that stage (the scales read from global memory in the sub-step
  left the first dequantization waiting on a load from L2 after every barrier);
- it then computes ``steps`` sub-steps of ``kc = chunks * chunk_k(bits)`` values of k: each thread reads
  its 16-byte strings of codes from the stage (a warp's 512 bytes contiguous: no bank conflict) and its
  16 bytes of X per row of its B fragments and 32 values of k (the pre-layout's permuted k;
  ``plan_shared_memory`` swizzles the stage so that these reads hit every bank once); the decode kernel's
  ``_step`` makes them the A operand (decoded, dequantized) and the B operand, and multiplies;
- the scales go on the weights (one multiply per code, in the compute dtype, after the zero point is
  subtracted): a sub-step spans ``R = max(1, kc / group)`` groups, which split the A operand's k as
  broadcast dims of the scales' rows; unlike the decode kernel's scaled partial sums (``scale_on =
  "groups"``), this needs no second accumulator, and a sub-step need not hold whole groups. Scales per
  channel multiply the sum once, at the end. At decode size (one warp across m, a small tile, sub-steps
  of whole groups), the kernel takes the decode kernel's plan and its scaled partial sums, which cost one
  multiply-add per accumulator element a group instead of a multiply per code (``prefill_plan``);
- the epilogue is the decode kernel's: the global scale, the bias, one rounding, a masked store of the
  ragged tile.

The tiling is one Python value (``PrefillPlan``, a constexpr), whose ``core`` is a ``KernelPlan`` with the
warp grid's layouts, so that the decode kernel's helpers run on it unchanged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import tilevm as tv
from tilevm.layout import RegisterLayout, local, mma_fragments, replicated, spatial
from tilevm.ops.qgemm import prelayout
from tilevm.ops.qgemm.kernel import (
    KernelPlan,
    _block_sum,
    _codes,
    _dequantized,
    _rows,
    _step,
    _tile_epilogue,
    code_scale,
    kernel_plan,
    plan_error,
)

__all__ = ["PrefillPlan", "prefill_kernel", "prefill_plan"]

_FRAGMENTS = mma_fragments("m16n8k16", "f16")
#: values of k in a 32-value block of the mma order, rows of X an mma atom
_BLOCK, _M_ATOM = 32, 8
#: values of k of a window that a dot from shared memory reads: rows of 128 bytes
_PIECE_K = 64


@dataclass(frozen=True)
class PrefillPlan:
    """The tiling of one prefill specialization (see ``prefill_plan``); ``core`` is what the decode
    kernel's helpers read, for one sub-step."""

    core: KernelPlan
    m_warps: int  # warps across m (the core's n_warps are across n)
    steps: int  # sub-steps an iteration (a stage holds steps * core.chunks chunks)
    stages: int  # iterations in flight in shared memory
    group_size: int  # values of k a row of scales covers (K: per channel)
    warpgroups: bool = False  # the weights dequantized into shared memory, multiplied there (dot_shared)
    running: int = 0  # with warpgroups, the dots left running across an iteration's barrier (0 or 1)
    raster: int = 1  # row tiles a band of the blocks' order (``_tile``)

    @property
    def stored(self) -> RegisterLayout:
        """With ``warpgroups``, the layout in which a sub-step's dequantized weights ``[block_n, windows,
        width]`` (true k order) are stored: the A fragments' threads, each holding its 8 values of k of a
        32-value block side by side in its registers, so that one 16-byte store writes them."""
        core = self.core
        windows, width = max(1, core.kc // _PIECE_K), min(core.kc, _PIECE_K)
        fragment = spatial(8, 4) * local(1, 8)  # lane 4 g + t: row g, values 8 t to 8 t + 7 of a block
        rows = local(core.n_tiles, 1) * spatial(core.n_warps, 1) * local(2, core.kc // _BLOCK)
        return (rows * fragment).reshape(core.block_n, windows, width)

    @property
    def stage_chunks(self) -> int:
        """Pre-layout chunks an iteration copies."""
        return self.steps * self.core.chunks

    @property
    def stage_k(self) -> int:
        """Values of k an iteration copies."""
        return self.steps * self.core.kc

    @property
    def num_warps(self) -> int:
        return self.core.n_warps * self.m_warps

    @property
    def stage_rows(self) -> int:
        """Rows of scales (and of zero points) an iteration's sub-steps apply, copied into its stage with
        its operands; 0 per channel, where one row of zero points serves every iteration."""
        if self.core.scale_on == "channel":
            return 0
        return max(1, self.stage_k // self.group_size)

    @property
    def ahead(self) -> int:
        """Iterations whose copies are in flight ahead of the one multiplied: all stages but the one read,
        and but the ones the dots left running still read."""
        return self.stages - 1 - self.running

    @property
    def buffers(self) -> int:
        """Buffers of dequantized weights (with ``warpgroups``): the one multiplied, the one dequantized
        meanwhile, and those of the dots left running."""
        return 2 + self.running

    @property
    def pieces(self) -> int:
        """Windows of 64 values of k (one 128-byte row of 16-bit values: the tensor cores' canonical
        operand) an iteration holds, with ``warpgroups``."""
        return self.stage_k // _PIECE_K

    def step_row(self, step: int) -> int:
        """The first of the stage's rows that sub-step ``step`` applies (0 while a group spans the
        iteration: sizes of k and groups are powers of two)."""
        return step * self.core.kc // self.group_size


@functools.cache
def prefill_plan(
    bits: int,
    n_warps: int,
    m_warps: int,
    n_tiles: int,
    m_tiles: int,
    chunks: int,
    steps: int,
    stages: int,
    group_size: int,
    k: int,
    split_k: int = 1,
    warpgroups: bool = False,
    running: int = 0,
    raster: int = 1,
) -> PrefillPlan:
    """The plan for codes of ``bits`` bits in groups of ``group_size`` values of k (``k``: per channel)
    under a ``PrefillConfig``'s fields. Cached: a launch costs no layout algebra.

    With one warp across m and a small tile whose sub-steps hold whole groups (the prefill kernel at
    decode size), the core is the decode kernel's plan with one slice of k (``kernel_plan``), which scales
    each group's partial sums (``scale_on="groups"``: one multiply-add per accumulator element a group)
    rather than every weight; its layouts are the ones built below where they coincide. Only while a
    thread's accumulators a group stay few (two mma atoms of them at most): on the H100, M = 16 with two
    groups a sub-step took 1.2 to 1.4 times as long for 5 bits this way (int5 at 8192x28672: 91 against 68
    µs), one group a sub-step 0.96 to 0.98 times (int6: 76 against 79).

    With ``warpgroups`` the core's operand A layout is only where the dequantized weights are made before
    they are stored (``_dequantize_into``); they are scaled there (never the partial sums), and an
    iteration spans whole windows of 64 values of k."""
    kc = chunks * prelayout.chunk_k(bits)
    groups = kc // group_size if group_size not in (16, k) else 1
    if warpgroups and (m_warps != 1 or steps * kc % _PIECE_K):
        raise ValueError(f"warpgroups take one warp across m and windows of {_PIECE_K} values of k")
    decode_core = plan_error(bits, chunks, group_size, k) is None and n_tiles * m_tiles * groups <= 2
    if m_warps == 1 and not warpgroups and decode_core:
        core = kernel_plan(bits, n_warps, 1, split_k, n_tiles, _M_ATOM * m_tiles, chunks, group_size, k)
        return PrefillPlan(
            core=core, m_warps=1, steps=steps, stages=stages, group_size=group_size, raster=raster
        )
    per_channel = group_size == k
    block_n = prelayout.N_GROUP * n_tiles * n_warps
    block_m = _M_ATOM * m_tiles * m_warps
    k_digits, weight_tile_shape = _scale_digits(kc, group_size, per_channel, block_n)
    atoms = kc // 16  # mma k16 steps of a sub-step
    # warp (w, v) = w * m_warps + v holds columns w and rows v of the block's tile; the A operand is the
    # same in the warps of a column, the B operand in the warps of a row
    accumulator = local(1, 1, n_tiles, m_tiles) * spatial(1, 1, n_warps, m_warps) * _FRAGMENTS.c
    a = (
        local(1, 1, n_tiles, 1)
        * spatial(1, 1, n_warps, 1)
        * replicated(m_warps)
        * local(1, 1, 1, atoms)
        * _FRAGMENTS.a
    )
    b = (
        local(1, 1, 1, m_tiles)
        * replicated(n_warps)
        * spatial(1, 1, 1, m_warps)
        * local(1, 1, atoms, 1)
        * _FRAGMENTS.b
    )
    # X's window [m, (jh, t, jl, s1, s0)]: b [1, 1, (jh, jl, s1, t, s0), m] (as kernel_plan)
    x = (
        b.permute(3, 0, 1, 2)
        .reshape(block_m, 1, kc // _BLOCK, 2, 2, 4, 2)
        .permute(0, 1, 2, 5, 3, 4, 6)
        .reshape(block_m, kc)
    )
    weights = (
        local(n_tiles, 1, 1, 1, 1)
        * spatial(n_warps, 1, 1, 1, 1)
        * replicated(m_warps)
        * local(1, chunks, prelayout.loads_per_chunk(bits), 1, 1)
        * spatial(1, 1, 1, prelayout.LANES, 1)
        * local(1, 1, 1, 1, prelayout.LOAD_BYTES)
    )
    # the A operand [1, 1, n, k] seen as [1, 1, *k_digits, n]: a group's scales broadcast along its digits
    rank = 3 + len(k_digits)
    n_last = a.reshape(1, 1, block_n, *k_digits).permute(0, 1, *range(3, rank), 2)
    broadcast = [dim for dim, size in enumerate(weight_tile_shape) if size == 1]
    rows = math.prod(weight_tile_shape[:-1])
    row_layout = n_last.reduce(*broadcast).reshape(rows, block_n)
    core = KernelPlan(
        block_m=block_m,
        n_tiles=n_tiles,
        n_warps=n_warps,
        k_warps=1,
        split_k=split_k,
        stream_k=False,
        chunks=chunks,
        loads=prelayout.loads_per_chunk(bits),
        kc=kc,
        scale_on="channel" if per_channel else "weights",
        groups=1,
        x=x,
        weights=weights,
        codes=a,
        accumulator=accumulator,
        group_rows=row_layout,  # read only when scale_on == "groups", which the prefill kernel never is
        weight_rows=row_layout,
        row_step=rows,
        k_digits=k_digits,
        weight_tile_shape=weight_tile_shape,
    )
    return PrefillPlan(
        core=core,
        m_warps=m_warps,
        steps=steps,
        stages=stages,
        group_size=group_size,
        warpgroups=warpgroups,
        running=running,
        raster=raster,
    )


def _scale_digits(
    kc: int, group_size: int, per_channel: bool, block_n: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The digits of a sub-step's k (mma order) in which each group of scales is a broadcast dim, and the
    shape the scales' rows take to broadcast against the A operand seen as ``[1, 1, *k_digits, n]``."""
    if per_channel:  # one row of zero points (the scales multiply the sum at the end)
        return (kc,), (1, 1, 1, block_n)
    if group_size == 16:  # true k = 32 jh + 8 t + ...: a group is (jh, t // 2), t a digit of the mma's k
        blocks = kc // _BLOCK
        return (blocks, 4, 2, 4), (1, 1, blocks, 1, 2, 1, block_n)
    groups = max(1, kc // group_size)  # whole 32-value blocks: the most significant digit of k
    return (groups, kc // groups), (1, 1, groups, 1, block_n)


@tv.func
def _copy_stage(stages, tensors, m0, n0, group0, stage, iteration, last, HAS_ZEROS, PREFILL):
    """Starts copying iteration ``iteration``'s X window, packed bytes and rows of scales and zero points
    (those it applies: ``stage_rows``) into stage ``stage`` of ``stages`` (``_stages``) if it comes before
    ``last`` (past the end of k, the copies read zeros); the group is committed either way, so that every
    iteration waits for the same count of groups."""
    core = PREFILL.core
    x_stages, w_stages, s_stages, z_stages, _ = stages
    x, packed, scales, zeros = tensors
    if iteration < last:
        if PREFILL.warpgroups:  # windows of 64 values of k, each its own [block_m, 64] tile
            for piece in tv.static_range(PREFILL.pieces):
                x_piece = tv.slice_shared(x_stages, [stage, piece, 0, 0], [core.block_m, _PIECE_K])
                tv.copy_async(x_piece, x, offsets=[m0, iteration * PREFILL.stage_k + piece * _PIECE_K])
        else:
            x_stage = tv.slice_shared(x_stages, [stage, 0, 0], [core.block_m, PREFILL.stage_k])
            tv.copy_async(x_stage, x, offsets=[m0, iteration * PREFILL.stage_k])
        shape = [core.block_n // 16, PREFILL.stage_chunks, core.loads, 32, 16]
        w_stage = tv.slice_shared(w_stages, [stage, 0, 0, 0, 0, 0], shape)
        tv.copy_async(w_stage, packed, offsets=[group0, iteration * PREFILL.stage_chunks, 0, 0, 0])
        if PREFILL.stage_rows:
            row0 = iteration * PREFILL.stage_k // PREFILL.group_size
            rows = [PREFILL.stage_rows, core.block_n]
            tv.copy_async(tv.slice_shared(s_stages, [stage, 0, 0], rows), scales, offsets=[row0, n0])
            if HAS_ZEROS:
                tv.copy_async(tv.slice_shared(z_stages, [stage, 0, 0], rows), zeros, offsets=[row0, n0])
    tv.copy_async_commit()


@tv.func
def _stage_rows(stages, stage, step, LAYOUT, PREFILL):
    """Sub-step ``step``'s rows of one of ``stages`` (scales or zero points) in the iteration in ``stage``,
    in ``LAYOUT``."""
    rows = tv.slice_shared(stages, [stage, PREFILL.step_row(step), 0], list(LAYOUT.shape))
    return tv.load_shared(rows, layout=LAYOUT)


@tv.func
def _sub_step(acc, stages, stage, step, channel_zeros, CODE, HAS_ZEROS, PREFILL):
    """``acc`` plus sub-step ``step`` of the iteration in ``stage``: the operands read from shared memory in
    their fragments' layouts, then the decode kernel's step (the weights dequantized and scaled, one
    dot)."""
    x_stages = stages[0]
    window = tv.slice_shared(
        x_stages, [stage, 0, step * PREFILL.core.kc], [PREFILL.core.block_m, PREFILL.core.kc]
    )
    x_now = tv.load_shared(window, layout=PREFILL.core.x)
    weights = _weight_operands(stages, stage, step, channel_zeros, HAS_ZEROS, PREFILL)
    return _step(acc, (x_now, *weights), CODE, HAS_ZEROS, PREFILL.core)


@tv.func
def _weight_operands(stages, stage, step, channel_zeros, HAS_ZEROS, PREFILL):
    """Sub-step ``step``'s packed bytes and the rows of scales and zero points it applies (0 for none),
    read from the stage in their layouts."""
    core = PREFILL.core
    _, w_stages, s_stages, z_stages, _ = stages
    shape = [core.block_n // 16, core.chunks, core.loads, 32, 16]
    strings = tv.slice_shared(w_stages, [stage, 0, step * core.chunks, 0, 0, 0], shape)
    w_now = tv.load_shared(strings, layout=core.weights)
    scale_rows = 0  # none where the sub-step applies none
    zero_rows = channel_zeros
    if core.scale_on == "groups":
        scale_rows = _stage_rows(s_stages, stage, step, core.group_rows, PREFILL)
    elif core.scale_on == "weights":
        scale_rows = _stage_rows(s_stages, stage, step, core.weight_rows, PREFILL)
    if HAS_ZEROS and PREFILL.stage_rows:
        zero_rows = _stage_rows(z_stages, stage, step, core.weight_rows, PREFILL)
    return w_now, scale_rows, zero_rows


@tv.func
def _dequantize_into(stages, stage, buffer, step, channel_zeros, CODE, HAS_ZEROS, PREFILL):
    """Sub-step ``step``'s weights of the iteration in ``stage`` dequantized (scaled, in X's dtype) and
    stored in true k order into its windows of dequantized buffer ``buffer`` (``[pieces, block_n, 64]``),
    where the tensor cores read them."""
    core = PREFILL.core
    w_now, scale_rows, zero_rows = _weight_operands(stages, stage, step, channel_zeros, HAS_ZEROS, PREFILL)
    dequantized = stages[4]
    codes = tv.cast(_codes(w_now, CODE, core), dequantized.dtype)
    w = _dequantized(codes, scale_rows, zero_rows, HAS_ZEROS, core)
    # the mma order's k (jh, jl, s1, t, s0) back to the true order (jh, t, jl, s1, s0), then in windows
    digits = tv.view(w, w.dtype, [core.block_n, core.kc // _BLOCK, 2, 2, 4, 2])
    windows, width = max(1, core.kc // _PIECE_K), min(core.kc, _PIECE_K)  # a sub-step may fill part of one
    ordered = tv.view(tv.permute(digits, [0, 1, 4, 2, 3, 5]), w.dtype, [core.block_n, windows, width])
    ordered = tv.convert_layout(ordered, PREFILL.stored)  # each thread's registers reordered alone
    start = step * core.kc
    target = tv.slice_shared(
        dequantized, [buffer, start // _PIECE_K, 0, start % _PIECE_K], [windows, core.block_n, width]
    )
    tv.store_shared(target, tv.permute(ordered, [1, 0, 2]))


@tv.func
def _multiply_windows(acc, stages, stage, buffer, PREFILL):
    """``acc`` plus the dequantized weights in ``buffer`` times the X windows in ``stage``, read from shared
    memory by dots left running (``dot_wait`` completes them)."""
    x_stages, dequantized = stages[0], stages[4]
    core = PREFILL.core
    for piece in tv.static_range(PREFILL.pieces):
        w_piece = tv.slice_shared(dequantized, [buffer, piece, 0, 0], [core.block_n, _PIECE_K])
        x_piece = tv.slice_shared(x_stages, [stage, piece, 0, 0], [core.block_m, _PIECE_K])
        acc = tv.dot(w_piece, tv.permute(x_piece, [1, 0]), acc, wait=False)
    return acc


@tv.func
def _stages(x, scales, HAS_ZEROS, PREFILL):
    """The pipeline's buffers of shared memory: ``stages`` iterations of X windows, packed bytes and rows
    of scales and of zero points (0 for those an iteration does not copy); with ``warpgroups``, X's
    windows are ``[pieces, block_m, 64]`` an iteration, and two buffers hold two iterations' dequantized
    weights (0 without)."""
    core = PREFILL.core
    dequantized = 0
    if PREFILL.warpgroups:
        x_stages = tv.shared_tensor(x.dtype, [PREFILL.stages, PREFILL.pieces, core.block_m, _PIECE_K])
        dequantized = tv.shared_tensor(x.dtype, [PREFILL.buffers, PREFILL.pieces, core.block_n, _PIECE_K])
    else:
        x_stages = tv.shared_tensor(x.dtype, [PREFILL.stages, core.block_m, PREFILL.stage_k])
    shape = [PREFILL.stages, core.block_n // 16, PREFILL.stage_chunks, core.loads, 32, 16]
    w_stages = tv.shared_tensor(tv.uint8, shape)
    s_stages = z_stages = 0
    if PREFILL.stage_rows:
        s_stages = tv.shared_tensor(scales.dtype, [PREFILL.stages, PREFILL.stage_rows, core.block_n])
        if HAS_ZEROS:  # zero points are integers in the compute dtype, X's
            z_stages = tv.shared_tensor(x.dtype, [PREFILL.stages, PREFILL.stage_rows, core.block_n])
    return x_stages, w_stages, s_stages, z_stages, dequantized


def _code_scale(code: tv.DType, compute: tv.DType, has_zeros: bool, plan: PrefillPlan) -> float:
    """The scale of the codes' cast (``kernel.code_scale``) where the weights are multiplied in registers
    (``_step``); 1 on the warpgroups, which read the dequantized weights from shared memory: their
    ``wgmma`` has not been run on float16 halves as small as those (subnormal for ``float4_e2m1``'s 0.5)."""
    return 1.0 if plan.warpgroups else code_scale(code, compute, plan.core.scale_on, has_zeros)


@tv.func
def _tile(RASTER):
    """The block's tile (row, column) of the output's transpose: by its block index, or with ``RASTER``
    above 1 in bands of ``RASTER`` row tiles (the last band what is left), column after column down each
    band, so that the blocks running at once share the weights' columns and X's rows of a band in L2,
    rather than all the weights for a row or two of X (H100, M = 4096, 28672x8192, bands of 8: int8 3589
    -> 3418 µs, int4 3269 -> 3231; at 8192x8192, whose weights L2 holds, 0.99 to 1.0x the speed)."""
    tm, tn = tv.block_idx(1), tv.block_idx(0)
    if RASTER > 1:
        columns = tv.num_blocks(0)
        order = tm * columns + tn  # the order in which the GPU starts blocks
        band = order // (RASTER * columns)
        top = band * RASTER
        height = tv.minimum(tv.num_blocks(1) - top, RASTER)
        within = order - band * (RASTER * columns)
        tm, tn = top + within % height, within // height
    return tm, tn


def _body(
    x: tv.Tensor,
    packed: tv.Tensor[tv.uint8, 5],
    scales: tv.Tensor,
    zeros: tv.Tensor,
    global_scale: tv.Tensor,
    bias: tv.Tensor,
    out: tv.Tensor,
    workspace: tv.Tensor,
    counters: tv.Tensor,
    CODE: tv.constexpr,
    HAS_ZEROS: tv.constexpr,
    HAS_GLOBAL_SCALE: tv.constexpr,
    HAS_BIAS: tv.constexpr,
    PREFILL: tv.constexpr,
):
    core = PREFILL.core
    tm, tn = _tile(PREFILL.raster)
    m0, n0 = tm * core.block_m, tn * core.block_n
    group0 = tn * (core.block_n // 16)
    stages = _stages(x, scales, HAS_ZEROS, PREFILL)
    tensors = (x, packed, scales, zeros)
    iterations = tv.cdiv(packed.shape[1], PREFILL.stage_chunks)
    per_block = tv.cdiv(iterations, core.split_k)  # with split_k, block z runs iterations [first, last)
    first = tv.block_idx(2) * per_block
    last = tv.minimum(first + per_block, iterations)
    for stage in tv.static_range(PREFILL.ahead):
        _copy_stage(stages, tensors, m0, n0, group0, stage, first + stage, last, HAS_ZEROS, PREFILL)
    channel_zeros = 0  # per channel, the one row of zero points every sub-step subtracts
    if HAS_ZEROS and not PREFILL.stage_rows:
        channel_zeros = _rows(zeros, 0, n0, 1, core.weight_rows)
    if PREFILL.warpgroups:
        acc = _warpgroup_iterations(
            stages, tensors, m0, n0, group0, first, last, channel_zeros, CODE, HAS_ZEROS, PREFILL
        )
    else:
        acc = _iterations(
            stages, tensors, m0, n0, group0, first, last, channel_zeros, CODE, HAS_ZEROS, PREFILL
        )
    tv.copy_async_wait(0)
    total = _block_sum(acc, scales, n0, _code_scale(CODE, x.dtype, HAS_ZEROS, PREFILL), core)
    _tile_epilogue(
        total, workspace, counters, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, core
    )


@tv.func
def _iterations(stages, tensors, m0, n0, group0, first, last, channel_zeros, CODE, HAS_ZEROS, PREFILL):
    """The sum of iterations ``first`` to ``last`` (the block's tile): each sub-step's operands read
    from shared memory into registers and multiplied there."""
    core = PREFILL.core
    acc = tv.register_tensor(
        tv.float32, [1, core.groups, core.block_n, core.block_m], init=0.0, layout=core.accumulator
    )
    for j in range(last - first):
        # iteration first + j's copies are the oldest of the stages - 1 groups in flight; after the barrier
        # every thread is done with iteration j - 1, whose stage the copies for j + stages - 1 then fill
        tv.copy_async_wait(PREFILL.stages - 2)
        tv.sync()
        ahead = j + PREFILL.stages - 1
        _copy_stage(
            stages, tensors, m0, n0, group0, ahead % PREFILL.stages, first + ahead, last, HAS_ZEROS, PREFILL
        )
        stage = j % PREFILL.stages
        for step in tv.static_range(PREFILL.steps):
            acc = _sub_step(acc, stages, stage, step, channel_zeros, CODE, HAS_ZEROS, PREFILL)
    return acc


@tv.func
def _warpgroup_iterations(
    stages, tensors, m0, n0, group0, first, last, channel_zeros, CODE, HAS_ZEROS, PREFILL
):
    """The sum of iterations ``first`` to ``last`` with ``warpgroups``: an iteration's weights are
    dequantized into one of ``buffers`` buffers an iteration ahead of the dot that reads them, so that the
    dequantization of iteration j + 1 runs while the tensor cores multiply iteration j, and ``running``
    dots are left running across the barrier. At the top of iteration j, after the barrier, every thread
    has dequantized j and finished the dot of j - 1 - running, whose stage the copies for j + ahead then
    fill and whose buffer j + 1's weights then fill; the copies of j + 1 are complete (ahead - 2 groups
    may still be in flight)."""
    core = PREFILL.core
    count = last - first
    acc = tv.register_tensor(tv.float32, [core.block_n, core.block_m], init=0.0)
    tv.copy_async_wait(PREFILL.ahead - 1)
    tv.sync()
    if count > 0:
        for step in tv.static_range(PREFILL.steps):
            _dequantize_into(stages, 0, 0, step, channel_zeros, CODE, HAS_ZEROS, PREFILL)
    for j in range(count):
        tv.copy_async_wait(PREFILL.ahead - 2)
        tv.dot_wait(PREFILL.running)
        tv.sync()
        # the dot first: the tensor cores start as soon as the barrier lets them (the copies issued before
        # it kept them idle about 60 µs of 940 at int4, M = 4096, 8192x8192 on an H100); then the copies,
        # as long as can be before the async-proxy fence that the next barrier takes after the weights'
        # stores, since the fence waits for every copy the thread has in flight (the copies after the
        # dequantization: 898 µs against 883)
        acc = _multiply_windows(acc, stages, j % PREFILL.stages, j % PREFILL.buffers, PREFILL)
        ahead = j + PREFILL.ahead
        _copy_stage(
            stages, tensors, m0, n0, group0, ahead % PREFILL.stages, first + ahead, last, HAS_ZEROS, PREFILL
        )
        if j + 1 < count:
            for step in tv.static_range(PREFILL.steps):
                stage, buffer = (j + 1) % PREFILL.stages, (j + 1) % PREFILL.buffers
                _dequantize_into(stages, stage, buffer, step, channel_zeros, CODE, HAS_ZEROS, PREFILL)
    tv.dot_wait(0)
    return tv.view(acc, acc.dtype, [1, 1, core.block_n, core.block_m])


@functools.cache
def prefill_kernel(num_warps: int, max_registers: int | None = None) -> tv.Kernel:
    """The prefill kernel for blocks of ``num_warps`` warps whose threads take at most ``max_registers``
    registers (None: ptxas' choice); one ``tv.Kernel`` each, made once."""
    return tv.kernel(_body, num_warps=num_warps, max_registers=max_registers)

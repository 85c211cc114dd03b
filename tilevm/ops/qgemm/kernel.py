"""The quantized GEMM kernel in the DSL: ``out = X @ dequant(W).T (+ bias)`` from pre-laid-out codes.

A block computes ``block_m`` rows and ``block_n = 8 * n_tiles * num_warps`` columns of ``out``; warp ``w``
owns the n8 tiles ``r * num_warps + w`` (``r < n_tiles``). Each loop iteration covers ``chunks`` pre-layout
chunks (``kc = chunks * chunk_k(bits)`` values of k):

- the weights: one window of ``packed`` (``prelayout``), pinned so that every thread loads its own 16-byte
  strings; ``tv.view`` reads them as the code dtype, a ``permute`` sorts the k digits into the mma order and
  a last ``view`` makes the ``[kc, block_n]`` B operand, whose layout is the mma B fragment with its
  repeats: the weights never leave the thread that loaded them;
- X: a ``[block_m, kc]`` window in which each thread loads 8 contiguous values (16 bytes) per row and 32
  values of k, the A fragments of the permuted k (``prelayout``); ``view``/``permute`` put them in mma order;
- dequantization: ``tv.cast`` to the compute dtype (the bit sequences of ``cast_packed``), then the zero
  point subtracted (exact: small integers) and the scale multiplied, in the compute dtype, by groups of k
  (``scale_on="weights"``); where a group spans whole iterations the scale multiplies a float32 partial sum
  once per group instead (``scale_on="accumulator"``: no per-weight work, and exact);
- ``tv.dot`` accumulates in float32 (mma.m16n8k16); the epilogue applies the global scale and the bias,
  rounds once to the compute dtype and stores the ragged tile (masked).

The tiling and the layouts are one Python value (``KernelPlan``) passed as a constexpr: its layouts pin
the loads so that layout inference needs no ``convert_layout`` on the weights or the scales.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import tilevm as tv
from tilevm.layout import RegisterLayout, local, mma_fragments, replicated, spatial
from tilevm.ops.qgemm import prelayout

__all__ = ["KERNELS", "KernelPlan", "kernel_plan"]

#: the mma fragments (the same layouts for float16 and bfloat16)
_FRAGMENTS = mma_fragments("m16n8k16", "f16")


@dataclass(frozen=True)
class KernelPlan:
    """The tiling and the pinned layouts of one kernel specialization (see ``kernel_plan``)."""

    block_m: int
    n_tiles: int  # mma n8 tiles a warp
    num_warps: int
    chunks: int  # pre-layout chunks an iteration
    loads: int  # 16-byte loads a thread makes per chunk and n8 tile
    kc: int  # values of k an iteration
    scale_on: str  # "weights" (in the compute dtype, per group) or "accumulator" (float32, per group)
    group_iterations: int  # iterations a group spans ("accumulator"; 0: one group, the whole of k)
    x: RegisterLayout  # the X window [block_m, kc]
    weights: RegisterLayout  # the packed window [block_n // 8, chunks, loads, 32, 16]
    accumulator: RegisterLayout  # [block_m, block_n]
    columns: RegisterLayout  # a [1, block_n] row broadcast over the accumulator (scales, bias)
    weight_columns: RegisterLayout  # a [1, block_n] row broadcast over the B operand (zero points)
    groups: RegisterLayout | None  # the [kc // group, block_n] scales (and zeros) of one iteration
    group_shape: tuple[int, ...]  # the B operand viewed so that each group is a broadcast dim
    group_tile_shape: tuple[int, ...]  # the scales viewed to broadcast against group_shape
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a launch hashes its constexprs: the plan's hash is computed once, not over its layouts every call
        fields = tuple(getattr(self, name) for name in self.__dataclass_fields__ if name != "_hash")
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @property
    def block_n(self) -> int:
        return prelayout.N_GROUP * self.n_tiles * self.num_warps


@functools.cache
def kernel_plan(
    bits: int, num_warps: int, n_tiles: int, block_m: int, chunks: int, group_size: int, k: int
) -> KernelPlan:
    """The plan for codes of ``bits`` bits, groups of ``group_size`` values of k (``k``: per channel) under
    a configuration (``QGemmConfig``'s fields). A group of whole iterations, or the whole of k, is scaled on
    the float32 partial sum, once; a smaller one on the weights. Cached: a launch costs no layout algebra."""
    per_thread = prelayout.codes_per_thread(bits)
    blocks32 = chunks * per_thread // 8  # 32-value blocks of k per iteration (jh digits)
    kc, block_n = 32 * blocks32, prelayout.N_GROUP * n_tiles * num_warps
    if group_size == k:
        scale_on, group_iterations = "accumulator", 0
    elif group_size % kc == 0:
        scale_on, group_iterations = "accumulator", group_size // kc
    else:
        scale_on, group_iterations = "weights", 0
    m_tiles = block_m // 16
    # X's A operand: the mma A fragments over the k16 steps, every warp holding all of them; loaded in the
    # pre-layout's k order (the k16 steps' digits moved back), 8 contiguous values a row and 32 values of k
    a = local(m_tiles, 1) * replicated(num_warps) * local(1, 2 * blocks32) * _FRAGMENTS.a
    x = a.reshape(block_m, blocks32, 2, 2, 4, 2).permute(0, 1, 4, 2, 3, 5).reshape(block_m, kc)
    weights = (
        local(n_tiles, chunks, prelayout.loads_per_chunk(bits), 1, 1)
        * spatial(num_warps, 1, 1, prelayout.LANES, 1)
        * local(1, 1, 1, 1, prelayout.LOAD_BYTES)
    )
    accumulator = local(m_tiles, n_tiles) * spatial(1, num_warps) * _FRAGMENTS.c
    b = local(1, n_tiles) * spatial(1, num_warps) * local(2 * blocks32, 1) * _FRAGMENTS.b
    groups, group_shape, group_tile_shape = None, (kc, block_n), (1, block_n)
    if scale_on == "weights":
        if group_size == 16:  # true k = 32 jh + 8 t + ...: a group is (jh, t // 2); t is a digit of k_mma
            group_shape = (blocks32, 4, 2, 4, block_n)
            group_tile_shape = (blocks32, 1, 2, 1, block_n)
        else:  # a group is whole 32-value blocks: a leading digit of k_mma
            rows = kc // group_size
            group_shape = (rows, kc // rows, block_n)
            group_tile_shape = (rows, 1, block_n)
        broadcast = [dim for dim, size in enumerate(group_tile_shape) if size == 1]
        groups = b.reshape(group_shape).reduce(*broadcast).reshape(kc // group_size, block_n)
    return KernelPlan(
        block_m=block_m,
        n_tiles=n_tiles,
        num_warps=num_warps,
        chunks=chunks,
        loads=prelayout.loads_per_chunk(bits),
        kc=kc,
        scale_on=scale_on,
        group_iterations=group_iterations,
        x=x,
        weights=weights,
        accumulator=accumulator,
        columns=accumulator.reduce(0),
        weight_columns=b.reduce(0),
        groups=groups,
        group_shape=group_shape,
        group_tile_shape=group_tile_shape,
    )


@tv.func
def _loads(x, packed, m0, group0, i, PLAN):
    """Iteration ``i``'s operands: X's window as the A operand ``[block_m, kc]`` in the permuted k order of
    the pre-layout, and the packed bytes ``[block_n // 8, chunks, loads, 32, 16]``."""
    window = tv.load_global(x, offsets=[m0, i * PLAN.kc], shape=[PLAN.block_m, PLAN.kc], layout=PLAN.x)
    digits = tv.view(window, x.dtype, [PLAN.block_m, PLAN.kc // 32, 4, 2, 2, 2])  # m, jh, t, jl, s1, s0
    a = tv.view(tv.permute(digits, [0, 1, 3, 4, 2, 5]), x.dtype, [PLAN.block_m, PLAN.kc])
    shape = [PLAN.block_n // 8, PLAN.chunks, PLAN.loads, 32, 16]
    offsets = [group0, i * PLAN.chunks, 0, 0, 0]
    return a, tv.load_global(packed, offsets=offsets, shape=shape, layout=PLAN.weights)


@tv.func
def _codes(window, CODE, PLAN):
    """The loaded bytes as the B operand ``[kc, block_n]`` of codes, in the mma's k order."""
    strings = tv.permute(window, [0, 3, 1, 2, 4])  # each lane's bytes of every chunk, contiguous
    shape = [PLAN.n_tiles, PLAN.num_warps, 8, 4, PLAN.kc // 32, 2, 2, 2]  # r w nn t jh jl s1 s0
    ordered = tv.permute(tv.view(strings, CODE, shape), [4, 5, 6, 3, 7, 0, 1, 2])  # jh jl s1 t s0 | r w nn
    return tv.view(ordered, CODE, [PLAN.kc, PLAN.block_n])


@tv.func
def _dequantized(codes, scales, zeros, z, row, n0, GROUP, HAS_ZEROS, PLAN):
    """The B operand in the compute dtype: ``(codes - zeros) * scales`` when the scales go on the weights
    (each of this iteration's groups with its own row), ``codes - z`` (this group's zero points) when they
    go on the accumulator."""
    compute = codes.dtype
    if PLAN.scale_on == "accumulator":
        return codes - z if HAS_ZEROS else codes
    shape = [PLAN.kc // GROUP, PLAN.block_n]
    grouped = tv.view(codes, compute, PLAN.group_shape)
    if HAS_ZEROS:
        z_rows = tv.load_global(zeros, offsets=[row, n0], shape=shape, layout=PLAN.groups)
        grouped = grouped - tv.view(z_rows, compute, PLAN.group_tile_shape)
    s = tv.load_global(scales, offsets=[row, n0], shape=shape, layout=PLAN.groups)
    grouped = grouped * tv.view(tv.cast(s, compute), compute, PLAN.group_tile_shape)
    return tv.view(grouped, compute, [PLAN.kc, PLAN.block_n])


@tv.func
def _group_zeros(zeros, group, n0, HAS_ZEROS, PLAN):
    """The zero points of a group that spans whole iterations (None where there are none, or where the
    scales go on the weights, whose zero points come by iteration)."""
    if HAS_ZEROS and PLAN.scale_on == "accumulator":
        return tv.load_global(zeros, offsets=[group, n0], shape=[1, PLAN.block_n], layout=PLAN.weight_columns)
    return None


@tv.func
def _scaled(acc, part, scales, group, n0, PLAN):
    """``acc`` plus a group's partial sum, scaled here in float32 when the scales go on the accumulator."""
    if PLAN.scale_on == "weights":
        return acc + part
    s = tv.load_global(scales, offsets=[group, n0], shape=[1, PLAN.block_n], layout=PLAN.columns)
    return acc + part * tv.cast(s, tv.float32)


@tv.func
def _epilogue(acc, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN):
    """``out`` = ``acc * global_scale + bias``, rounded once to the compute dtype, stored (masked)."""
    if HAS_GLOBAL_SCALE:
        acc = acc * tv.load_scalar(global_scale, 0)
    if HAS_BIAS:
        b = tv.load_global(bias, offsets=[0, n0], shape=[1, PLAN.block_n], layout=PLAN.columns)
        acc = acc + tv.cast(b, tv.float32)
    tv.store_global(out, tv.cast(acc, out.dtype), offsets=[m0, n0])


def _body(
    x: tv.Tensor,
    packed: tv.Tensor[tv.uint8, 5],
    scales: tv.Tensor,
    zeros: tv.Tensor,
    global_scale: tv.Tensor,
    bias: tv.Tensor,
    out: tv.Tensor,
    CODE: tv.constexpr,
    GROUP: tv.constexpr,
    HAS_ZEROS: tv.constexpr,
    HAS_GLOBAL_SCALE: tv.constexpr,
    HAS_BIAS: tv.constexpr,
    PREFETCH: tv.constexpr,
    PLAN: tv.constexpr,
):
    m0, n0 = tv.block_idx(1) * PLAN.block_m, tv.block_idx(0) * PLAN.block_n
    group0 = tv.block_idx(0) * (PLAN.block_n // 8)
    iterations = tv.cdiv(packed.shape[1], PLAN.chunks)
    acc = tv.register_tensor(tv.float32, [PLAN.block_m, PLAN.block_n], init=0.0, layout=PLAN.accumulator)
    if PREFETCH:
        xa, wb = _loads(x, packed, m0, group0, 0, PLAN)
    # groups of iterations that share their scales on the accumulator (one group of all when the scales go
    # on the weights, or per channel)
    per_group = PLAN.group_iterations if PLAN.group_iterations else iterations
    for group in range(iterations // per_group):
        part = tv.register_tensor(tv.float32, [PLAN.block_m, PLAN.block_n], init=0.0, layout=PLAN.accumulator)
        z = _group_zeros(zeros, group, n0, HAS_ZEROS, PLAN)
        for j in range(per_group):
            i = group * per_group + j
            if PREFETCH:  # the next iteration's operands load while this one computes
                x_now, w_now = xa, wb
                xa, wb = _loads(x, packed, m0, group0, i + 1, PLAN)
            else:
                x_now, w_now = _loads(x, packed, m0, group0, i, PLAN)
            codes = tv.cast(_codes(w_now, CODE, PLAN), x.dtype)
            w = _dequantized(codes, scales, zeros, z, i * PLAN.kc // GROUP, n0, GROUP, HAS_ZEROS, PLAN)
            part = tv.dot(x_now, w, part)
        acc = _scaled(acc, part, scales, group, n0, PLAN)
    _epilogue(acc, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN)


#: one kernel per warp count (a block's thread count is fixed when a kernel is made)
KERNELS: dict[int, tv.Kernel] = {warps: tv.kernel(_body, num_warps=warps) for warps in (1, 2, 4, 8)}

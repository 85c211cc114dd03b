"""The quantized GEMM kernel in the DSL: ``out = X @ dequant(W).T (+ bias)`` from pre-laid-out codes.

The kernel computes ``out.T = W @ X.T`` with ``mma.m16n8k16``: the dequantized weight is operand A (16
rows of n an atom, 8 codes of each thread an mma) and X operand B (8 rows of X an atom: a decode step of 1
to 8 rows fills one). A block computes ``block_n = 16 * n_tiles * n_warps`` columns of ``out`` for
``block_m`` rows. Its ``num_warps = k_warps * n_warps`` warps split the work two ways: warp ``(s, w)``
owns the m16 atoms ``r * n_warps + w`` (``r < n_tiles``) of the ``k_warps`` slices of k it takes turns
on (``s``). An iteration covers ``k_warps * chunks`` pre-layout chunks: slice ``s`` takes the ``chunks``
chunks after ``s * chunks`` (``kc = chunks * chunk_k(bits)`` values of k), so the block's warps read
neighbouring bytes, 16 bytes per thread per load. ``split_k`` blocks share a tile's iterations, in
contiguous runs.

- the weights: one window of ``packed`` (``prelayout``), pinned so that every thread loads its own 16-byte
  strings; ``tv.view`` reads them as the code dtype, a ``permute`` sorts the digits into the mma order and
  a last ``view`` makes the batched ``[k_warps, R, block_n, kc / R]`` A operand, whose layout is the mma A
  fragment with its repeats: the weights never leave the thread that loaded them;
- X: a ``[block_m, k_warps * kc]`` window in which each thread loads 8 contiguous values (16 bytes) per
  32 values of k of its row, the B fragments of the permuted k (``prelayout``); ``view``/``permute`` make
  the batched ``[k_warps, R, kc / R, block_m]`` B operand;
- dequantization: ``tv.cast`` to the compute dtype (the bit sequences of ``cast_packed``), the zero
  point subtracted (exact: small integers); then the scales, by the size of a group:

  - a group of 32 or more values of k is a run of whole 32-value blocks of the mma order, so an
    iteration's ``R = kc / group`` groups are a batch dim of the dot: ``tv.dot`` computes each group's
    partial sum and one multiply-add per accumulator element scales it (``scale_on="groups"``);
  - a group of 16 mixes the lanes of an mma step: the scales multiply the weights (``"weights"``);
  - per channel, the scale multiplies the sum once, at the end (``"channel"``);
- ``tv.dot`` accumulates in float32; the slices' sums meet through shared memory (``tv.sum`` over the
  warps); with ``split_k`` blocks, each stores its float32 partial tile in a workspace and draws a ticket
  (``tv.atomic_add_scalar``); the last block of a tile adds the partial tiles in a fixed order (the result
  does not depend on which block finishes last), resets the counter for the next launch and runs the
  epilogue: the global scale and the bias, one rounding to the compute dtype, a masked store of the
  ragged tile, transposed back to ``out [M, N]``.

The tiling and the layouts are one Python value (``KernelPlan``) passed as a constexpr: its layouts pin
the loads so that layout inference needs no ``convert_layout`` in the loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import tilevm as tv
from tilevm.layout import RegisterLayout, local, mma_fragments, replicated, spatial
from tilevm.ops.qgemm import prelayout

__all__ = ["KernelPlan", "code_scale", "decode_kernel", "kernel_plan", "plan_error"]

#: the mma fragments (the same layouts for float16 and bfloat16)
_FRAGMENTS = mma_fragments("m16n8k16", "f16")
#: values of k in a 32-value block of the mma order (a ``jh`` digit of ``prelayout``), rows of X an atom
_BLOCK, _M_ATOM = 32, 8


@dataclass(frozen=True)
class KernelPlan:
    """The tiling and the pinned layouts of one kernel specialization (see ``kernel_plan``)."""

    block_m: int
    n_tiles: int  # mma m16 atoms of n a warp
    n_warps: int  # warps across the block's columns
    k_warps: int  # warps across k (slices of an iteration)
    split_k: int  # blocks across k
    stream_k: bool  # a persistent grid sharing the (tile, iteration) units evenly
    chunks: int  # pre-layout chunks a slice takes an iteration
    loads: int  # 16-byte loads a thread makes per chunk and m16 atom
    kc: int  # values of k a slice takes an iteration
    scale_on: str  # "groups" (a batch dim of the dot), "weights" (groups of 16) or "channel"
    groups: int  # R: the groups of a slice's iteration (1 unless scale_on == "groups")
    x: RegisterLayout  # the X window [block_m, k_warps * kc]
    weights: RegisterLayout  # the packed window [block_n // 16, k_warps * chunks, loads, 32, 16]
    codes: RegisterLayout  # the A operand [k_warps, R, block_n, kc / R]
    accumulator: RegisterLayout  # [k_warps, R, block_n, block_m]
    group_rows: RegisterLayout  # an iteration's scales [k_warps * R, block_n] ("groups")
    weight_rows: RegisterLayout  # the rows of scales or zeros an iteration applies to the A operand
    row_step: int  # rows of scales and zeros an iteration moves on (0: per channel, one row)
    k_digits: tuple[int, ...]  # the k of the A operand split so that each group is a broadcast dim
    weight_tile_shape: tuple[int, ...]  # weight_rows viewed to broadcast against the A operand (n last)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # a launch hashes its constexprs: the plan's hash is computed once, not over its layouts every call
        fields = tuple(getattr(self, name) for name in self.__dataclass_fields__ if name != "_hash")
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash

    @property
    def block_n(self) -> int:
        return prelayout.N_GROUP * self.n_tiles * self.n_warps

    @property
    def num_warps(self) -> int:
        return self.k_warps * self.n_warps


def plan_error(bits: int, chunks: int, group_size: int, k: int) -> str | None:
    """Why ``chunks`` chunks of ``bits``-bit codes cannot be scaled by groups of ``group_size`` of ``k``
    (None when they can): a slice's iteration must hold whole groups."""
    kc = chunks * prelayout.chunk_k(bits)
    if group_size in (16, k) or kc % group_size == 0:
        return None
    return (
        f"chunks={chunks} gives an iteration of {kc} values of k for {bits}-bit codes, which does not hold "
        f"whole groups of {group_size}: chunks must be a multiple of {group_size // prelayout.chunk_k(bits)}"
    )


@functools.cache
def kernel_plan(
    bits: int,
    n_warps: int,
    k_warps: int,
    split_k: int,
    n_tiles: int,
    block_m: int,
    chunks: int,
    group_size: int,
    k: int,
    stream_k: bool = False,
) -> KernelPlan:
    """The plan for codes of ``bits`` bits, groups of ``group_size`` values of k (``k``: per channel) under
    a configuration (``QGemmConfig``'s fields; ``plan_error`` says which cannot be planned). Cached: a
    launch costs no layout algebra."""
    error = plan_error(bits, chunks, group_size, k)
    if error:
        raise ValueError(error)
    kc = chunks * prelayout.chunk_k(bits)
    blocks = kc // _BLOCK  # 32-value blocks of k a slice's iteration
    if group_size == k:
        scale_on, groups = "channel", 1
    elif group_size == 16:
        scale_on, groups = "weights", 1
    else:
        scale_on, groups = "groups", kc // group_size
    block_n, m_tiles, atoms = prelayout.N_GROUP * n_tiles * n_warps, block_m // _M_ATOM, 2 * blocks // groups
    # the atoms of the batched dot [s, R, n, k] @ [s, R, k, m]: warps (s, w) with s the most significant,
    # w along n; each thread's locals ordered (n atom, m atom, group, k atom), so that the three layouts
    # agree as the dot's rule asks
    slices = spatial(k_warps, 1, 1, 1)
    accumulator = slices * local(1, 1, n_tiles, m_tiles) * spatial(1, 1, n_warps, 1) * local(1, groups, 1, 1)
    accumulator = accumulator * _FRAGMENTS.c
    a = (
        slices
        * local(1, 1, n_tiles, 1)
        * spatial(1, 1, n_warps, 1)
        * local(1, groups, 1, atoms)
        * _FRAGMENTS.a
    )
    b = slices * local(1, 1, 1, m_tiles) * replicated(n_warps) * local(1, groups, atoms, 1) * _FRAGMENTS.b
    # X's window [m, (s, jh, t, jl, s1, s0)]: b [s, R, (jh', jl, s1, t, s0), m] with jh = (R, jh')
    x = (
        b.permute(3, 0, 1, 2)
        .reshape(block_m, k_warps, blocks, 2, 2, 4, 2)
        .permute(0, 1, 2, 5, 3, 4, 6)
        .reshape(block_m, k_warps * kc)
    )
    weights = (
        spatial(1, k_warps, 1, 1, 1)
        * local(n_tiles, 1, 1, 1, 1)
        * spatial(n_warps, 1, 1, 1, 1)
        * local(1, chunks, prelayout.loads_per_chunk(bits), 1, 1)
        * spatial(1, 1, 1, prelayout.LANES, 1)
        * local(1, 1, 1, 1, prelayout.LOAD_BYTES)
    )
    # the A operand [s, R, n, k] seen as [s, R, *k_digits, n]: a group a broadcast dim
    k_digits, weight_tile_shape = (kc // groups,), (k_warps, groups, 1, block_n)
    if scale_on == "weights":  # true k = 32 jh + 8 t + ...: a group of 16 is (jh, t // 2), t a digit of k_mma
        k_digits, weight_tile_shape = (blocks, 4, 2, 4), (k_warps, 1, blocks, 1, 2, 1, block_n)
    elif scale_on == "channel":  # one row of zeros for every slice
        weight_tile_shape = (1, 1, 1, block_n)
    rank = 3 + len(k_digits)
    n_last = a.reshape(k_warps, groups, block_n, *k_digits).permute(0, 1, *range(3, rank), 2)
    broadcast = [dim for dim, size in enumerate(weight_tile_shape) if size == 1]
    rows = 1
    for size in weight_tile_shape[:-1]:
        rows *= size
    return KernelPlan(
        block_m=block_m,
        n_tiles=n_tiles,
        n_warps=n_warps,
        k_warps=k_warps,
        split_k=split_k,
        stream_k=stream_k,
        chunks=chunks,
        loads=prelayout.loads_per_chunk(bits),
        kc=kc,
        scale_on=scale_on,
        groups=groups,
        x=x,
        weights=weights,
        codes=a,
        accumulator=accumulator,
        group_rows=accumulator.reduce(3).permute(0, 1, 3, 2).reshape(k_warps * groups, block_n),
        weight_rows=n_last.reduce(*broadcast).reshape(rows, block_n),
        row_step=0 if scale_on == "channel" else rows,
        k_digits=k_digits,
        weight_tile_shape=weight_tile_shape,
    )


@tv.func
def _loads(x, packed, scales, zeros, m0, n0, i, HAS_ZEROS, PLAN):
    """Iteration ``i``'s operands for the tile at rows ``m0`` and columns ``n0``, in their pinned layouts:
    X's window ``[block_m, k_warps * kc]``, the packed bytes ``[block_n // 16, k_warps * chunks, loads, 32,
    16]``, and the rows of scales and of zero points that the iteration applies (0 where it applies
    none). All are loaded together, so that a prefetch hides the latency of every one."""
    chunk0 = i * PLAN.k_warps * PLAN.chunks
    k0 = chunk0 // PLAN.chunks * PLAN.kc
    window = tv.load_global(x, offsets=[m0, k0], shape=[PLAN.block_m, PLAN.k_warps * PLAN.kc], layout=PLAN.x)
    shape = [PLAN.block_n // 16, PLAN.k_warps * PLAN.chunks, PLAN.loads, 32, 16]
    weights = tv.load_global(packed, offsets=[n0 // 16, chunk0, 0, 0, 0], shape=shape, layout=PLAN.weights)
    row0, rows = i * PLAN.row_step, PLAN.weight_rows.shape[0]
    scale_rows = zero_rows = 0
    if PLAN.scale_on == "groups":
        scale_rows = _rows(scales, row0, n0, PLAN.k_warps * PLAN.groups, PLAN.group_rows)
    elif PLAN.scale_on == "weights":
        scale_rows = _rows(scales, row0, n0, rows, PLAN.weight_rows)
    if HAS_ZEROS:
        zero_rows = _rows(zeros, row0, n0, rows, PLAN.weight_rows)
    return window, weights, scale_rows, zero_rows


@tv.func
def _activations(window, PLAN):
    """X's window as the batched B operand ``[k_warps, R, kc / R, block_m]``: the permuted k order of the
    pre-layout put back in mma order, slice by slice."""
    # m, s, jh, t, jl, s1, s0 -> s, jh, jl, s1, t, s0, m
    digits = tv.view(window, window.dtype, [PLAN.block_m, PLAN.k_warps, PLAN.kc // 32, 4, 2, 2, 2])
    ordered = tv.permute(digits, [1, 2, 4, 5, 3, 6, 0])
    return tv.view(ordered, window.dtype, [PLAN.k_warps, PLAN.groups, PLAN.kc // PLAN.groups, PLAN.block_m])


@tv.func
def _codes(window, CODE, PLAN):
    """The loaded bytes as the batched A operand ``[k_warps, R, block_n, kc / R]`` of codes, in the mma's
    k order and the A fragment's layout: the twins of the pre-layout are put side by side by a gather of
    the codes, which the cast reads through (it takes each pair straight from the loaded words)."""
    shape = [PLAN.block_n // 16, PLAN.k_warps, PLAN.chunks, PLAN.loads, 32, 16]
    strings = tv.permute(tv.view(window, window.dtype, shape), [1, 0, 4, 2, 3, 5])  # s, gn, lane, bytes
    twins = prelayout.twins_per_half(CODE.nbits)
    # each lane's string: (ph, s0, pl) -> (ph, pl, s0)
    shape = [PLAN.k_warps, PLAN.block_n // 16, 32, PLAN.kc // 4 // twins, 2, twins]
    strings = tv.permute(tv.view(strings, CODE, shape), [0, 1, 2, 3, 5, 4])
    # s r w g t R jh' jl s1 nh s0 -> s R r w nh g jh' jl s1 t s0
    shape = [
        PLAN.k_warps,
        PLAN.n_tiles,
        PLAN.n_warps,
        8,
        4,
        PLAN.groups,
        PLAN.kc // 32 // PLAN.groups,
        2,
        2,
        2,
        2,
    ]
    ordered = tv.permute(tv.view(strings, CODE, shape), [0, 5, 1, 2, 9, 3, 6, 7, 8, 4, 10])
    operand = tv.view(ordered, CODE, [PLAN.k_warps, PLAN.groups, PLAN.block_n, PLAN.kc // PLAN.groups])
    return tv.convert_layout(operand, PLAN.codes)


@tv.func
def _rows(tensor, row0, n0, ROWS, LAYOUT):
    """``ROWS`` rows of a ``[groups, N]`` tensor (scales, zero points) from ``row0``, columns ``n0`` on."""
    return tv.load_global(tensor, offsets=[row0, n0], shape=[ROWS, LAYOUT.shape[1]], layout=LAYOUT)


@tv.func
def _dequantized(codes, scale_rows, zero_rows, HAS_ZEROS, PLAN):
    """The A operand in the compute dtype: ``codes - zeros``, times the scales when they go on the weights
    (groups of 16)."""
    compute = codes.dtype
    rank = 3 + len(PLAN.k_digits)
    if not HAS_ZEROS and PLAN.scale_on != "weights":
        return codes
    split = tv.view(codes, compute, [PLAN.k_warps, PLAN.groups, PLAN.block_n, *PLAN.k_digits])
    grouped = tv.permute(split, [0, 1, *range(3, rank), 2])  # n last
    if HAS_ZEROS:
        grouped = grouped - tv.view(zero_rows, compute, PLAN.weight_tile_shape)
    if PLAN.scale_on == "weights":
        grouped = grouped * tv.view(tv.cast(scale_rows, compute), compute, PLAN.weight_tile_shape)
    back = tv.permute(grouped, [0, 1, rank - 1, *range(2, rank - 1)])
    return tv.view(back, compute, [PLAN.k_warps, PLAN.groups, PLAN.block_n, PLAN.kc // PLAN.groups])


@tv.func
def _accumulated(acc, w, b, scale_rows, PLAN):
    """``acc`` plus this iteration's dot; each group's partial sum scaled first when the groups are a batch
    dim of the dot."""
    if PLAN.scale_on != "groups":
        return tv.dot(w, b, acc)
    shape = [PLAN.k_warps, PLAN.groups, PLAN.block_n, PLAN.block_m]
    part = tv.dot(w, b, tv.register_tensor(tv.float32, shape, init=0.0, layout=PLAN.accumulator))
    s = tv.cast(scale_rows, tv.float32)
    s = tv.permute(tv.view(s, tv.float32, [PLAN.k_warps, PLAN.groups, 1, PLAN.block_n]), [0, 1, 3, 2])
    return acc + part * s


def code_scale(code: tv.DType, compute: tv.DType, scale_on: str, has_zeros: bool) -> float:
    """The power of two the codes are cast with (``tv.cast``'s ``scale``), which the block's sum is divided
    by (``_block_sum``): for small floats cast to float16 whose scales multiply partial sums (``"groups"``)
    or the block's sum (``"channel"``), ``2**(bias - 15)``, so that their cast moves their bits into the
    halves and multiplies by nothing. Elsewhere 1: the scales of groups of 16 multiply the weights in the
    compute dtype, and bfloat16's halves would be subnormal. H100, ``float4_e2m1`` at 28672x8192 and
    8192x28672, µs with the multiply dropped: M = 1, 49.6 -> 48.9 and 49.4 -> 49.0; M = 16 (the prefill
    kernel at decode size), 55.2 -> 52.6 and 57.7 -> 53.2; ``float6_e3m2`` at M = 16, 81.4 -> 74.9 and 75.2
    -> 74.8."""
    small = code.is_float and code.nbits < 8 and code.exponent_bits < 5 and code.has_subnormals
    if small and compute == tv.float16 and scale_on in ("groups", "channel") and not has_zeros:
        return 2.0 ** (code.bias - 15)
    return 1.0


@tv.func
def _step(acc, operands, CODE, HAS_ZEROS, PLAN):
    """``acc`` plus one iteration's loaded ``operands`` (``_loads``): the codes cast (``code_scale``) and
    dequantized, then the dot."""
    window, weights, scale_rows, zero_rows = operands
    scale = code_scale(CODE, window.dtype, PLAN.scale_on, HAS_ZEROS)
    codes = tv.cast(_codes(weights, CODE, PLAN), window.dtype, scale=scale)
    w = _dequantized(codes, scale_rows, zero_rows, HAS_ZEROS, PLAN)
    return _accumulated(acc, w, _activations(window, PLAN), scale_rows, PLAN)


@tv.func
def _block_sum(acc, scales, n0, CODE_SCALE, PLAN):
    """The block's ``[block_m, block_n]`` float32 sum: its slices' and groups' partial sums added, divided
    by the codes' cast's scale (``code_scale``), times the scales when they are per channel."""
    total = tv.permute(tv.sum(tv.sum(acc, dim=1), dim=0), [1, 0])
    if CODE_SCALE != 1.0:
        total = total * (1.0 / CODE_SCALE)
    if PLAN.scale_on == "channel":
        s = tv.load_global(scales, offsets=[0, n0], shape=[1, PLAN.block_n])
        total = total * tv.cast(s, tv.float32)
    return total


@tv.func
def _epilogue(acc, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN):
    """``out`` = ``acc * global_scale + bias``, rounded once to the compute dtype, stored (masked)."""
    if HAS_GLOBAL_SCALE:
        acc = acc * tv.load_scalar(global_scale, 0)
    if HAS_BIAS:
        b = tv.load_global(bias, offsets=[0, n0], shape=[1, PLAN.block_n])
        acc = acc + tv.cast(b, tv.float32)
    tv.store_global(out, tv.cast(acc, out.dtype), offsets=[m0, n0])


@tv.func
def _tile_epilogue(
    total, workspace, counters, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN
):
    """The epilogue of a block's float32 ``total`` of its tile: the epilogue itself when one block computes
    the tile; when ``split_k`` blocks share it, each stores its partial tile, then draws a ticket, and the
    last to draw resets the counter, adds the partial tiles in block order and runs the epilogue."""
    if PLAN.split_k == 1:
        _epilogue(total, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN)
    else:
        tile = tv.block_idx(1) * tv.num_blocks(0) + tv.block_idx(0)
        tv.store_global(workspace, total, offsets=[tv.block_idx(2), m0, n0], dims=[1, 2])
        ticket = tv.atomic_add_scalar(counters, tile, 1)
        if ticket == PLAN.split_k - 1:
            tv.atomic_exchange_scalar(counters, tile, 0)
            shape = [PLAN.block_m, PLAN.block_n]
            result = tv.load_global(workspace, offsets=[0, m0, n0], shape=shape, dims=[1, 2])
            for part in range(1, PLAN.split_k):
                result = result + tv.load_global(workspace, offsets=[part, m0, n0], shape=shape, dims=[1, 2])
            _epilogue(result, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN)


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
    PREFETCH: tv.constexpr,
    PLAN: tv.constexpr,
):
    if PLAN.stream_k:
        _streamed(
            x, packed, scales, zeros, global_scale, bias, out, workspace, counters,
            CODE, HAS_ZEROS, HAS_GLOBAL_SCALE, HAS_BIAS, PREFETCH, PLAN,
        )  # fmt: skip
    else:
        _gridded(
            x, packed, scales, zeros, global_scale, bias, out, workspace, counters,
            CODE, HAS_ZEROS, HAS_GLOBAL_SCALE, HAS_BIAS, PREFETCH, PLAN,
        )  # fmt: skip


@tv.func
def _gridded(
    x, packed, scales, zeros, global_scale, bias, out, workspace, counters,
    CODE, HAS_ZEROS, HAS_GLOBAL_SCALE, HAS_BIAS, PREFETCH, PLAN,
):  # fmt: skip
    """A grid of a block per tile of ``block_m`` rows and ``block_n`` columns, and per run of its
    iterations with ``split_k`` (the blocks of a tile then add their partial tiles: ``_tile_epilogue``)."""
    m0, n0 = tv.block_idx(1) * PLAN.block_m, tv.block_idx(0) * PLAN.block_n
    step = PLAN.k_warps * PLAN.chunks  # chunks an iteration
    iterations = tv.cdiv(packed.shape[1], step)
    per_block = tv.cdiv(iterations, PLAN.split_k)
    first = tv.block_idx(2) * per_block
    last = tv.minimum(first + per_block, iterations)
    acc = tv.register_tensor(
        tv.float32, [PLAN.k_warps, PLAN.groups, PLAN.block_n, PLAN.block_m], init=0.0, layout=PLAN.accumulator
    )
    if PREFETCH:
        x_next, w_next, s_next, z_next = _loads(x, packed, scales, zeros, m0, n0, first, HAS_ZEROS, PLAN)
    for i in range(first, last):
        if PREFETCH:  # the next iteration's operands load while this one computes
            current = (x_next, w_next, s_next, z_next)
            x_next, w_next, s_next, z_next = _loads(x, packed, scales, zeros, m0, n0, i + 1, HAS_ZEROS, PLAN)
        else:
            current = _loads(x, packed, scales, zeros, m0, n0, i, HAS_ZEROS, PLAN)
        acc = _step(acc, current, CODE, HAS_ZEROS, PLAN)
    total = _block_sum(acc, scales, n0, code_scale(CODE, x.dtype, PLAN.scale_on, HAS_ZEROS), PLAN)
    _tile_epilogue(
        total, workspace, counters, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN
    )


@tv.func
def _streamed(
    x, packed, scales, zeros, global_scale, bias, out, workspace, counters,
    CODE, HAS_ZEROS, HAS_GLOBAL_SCALE, HAS_BIAS, PREFETCH, PLAN,
):  # fmt: skip
    """The persistent grid: the ``tiles * iterations`` units (a tile's iteration), tile by tile, are shared
    in equal runs by the blocks of a one-dimensional grid, so that every block streams the same number of
    bytes (no partial last wave). A block's loads run one unit ahead within a tile; the next tile's first
    loads wait for the epilogue, whose registers they would otherwise take. A tile that
    one block covers is stored by it; the blocks that share a tile each store their float32 partial tile
    (in their slot 0 for their first tile, 1 for their last) and draw a ticket, and the last adds the
    partial tiles in block order (``_stream_fixup``)."""
    step = PLAN.k_warps * PLAN.chunks  # chunks an iteration
    iterations = tv.cdiv(packed.shape[1], step)
    columns = tv.cdiv(out.shape[1], PLAN.block_n)
    units = columns * tv.cdiv(out.shape[0], PLAN.block_m) * iterations
    per_block = tv.cdiv(units, tv.num_blocks(0))
    first = tv.block_idx(0) * per_block
    last = tv.minimum(first + per_block, units)
    tile = first // iterations
    j = first - tile * iterations  # the unit's iteration of its tile
    tile_start = j  # the first iteration of the current tile that this block computes
    tn, tm = tile % columns, tile // columns
    acc = tv.register_tensor(
        tv.float32, [PLAN.k_warps, PLAN.groups, PLAN.block_n, PLAN.block_m], init=0.0, layout=PLAN.accumulator
    )
    if PREFETCH:
        x_next, w_next, s_next, z_next = _loads(
            x, packed, scales, zeros, tm * PLAN.block_m, tn * PLAN.block_n, j, HAS_ZEROS, PLAN
        )
    for u in range(first, last):
        j_next, tn_next, tm_next = j + 1, tn, tm
        if j_next == iterations:
            j_next, tn_next = 0, tn + 1
            if tn_next == columns:
                tn_next, tm_next = 0, tm + 1
        m0, n0 = tm * PLAN.block_m, tn * PLAN.block_n
        m_next, n_next = tm_next * PLAN.block_m, tn_next * PLAN.block_n
        if PREFETCH:  # the next unit's operands load while this one computes, within a tile
            current = (x_next, w_next, s_next, z_next)
            if j_next != 0 and u != last - 1:
                x_next, w_next, s_next, z_next = _loads(
                    x, packed, scales, zeros, m_next, n_next, j_next, HAS_ZEROS, PLAN
                )
        else:
            current = _loads(x, packed, scales, zeros, m0, n0, j, HAS_ZEROS, PLAN)
        acc = _step(acc, current, CODE, HAS_ZEROS, PLAN)
        if j_next == 0 or u == last - 1:  # the tile ends here for this block
            total = _block_sum(acc, scales, n0, code_scale(CODE, x.dtype, PLAN.scale_on, HAS_ZEROS), PLAN)
            if tile_start == 0 and j == iterations - 1:
                _epilogue(total, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN)
            else:
                _stream_fixup(
                    total, workspace, counters, global_scale, bias, out, m0, n0, tile, first, per_block,
                    iterations, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN,
                )  # fmt: skip
            acc = tv.register_tensor(
                tv.float32,
                [PLAN.k_warps, PLAN.groups, PLAN.block_n, PLAN.block_m],
                init=0.0,
                layout=PLAN.accumulator,
            )
            tile, tile_start = tile + 1, 0
            if PREFETCH:  # the next tile's first loads, issued after the epilogue: its registers are free
                x_next, w_next, s_next, z_next = _loads(
                    x, packed, scales, zeros, m_next, n_next, j_next, HAS_ZEROS, PLAN
                )
        j, tn, tm = j_next, tn_next, tm_next


@tv.func
def _stream_fixup(
    total, workspace, counters, global_scale, bias, out, m0, n0, tile, first, per_block, iterations,
    HAS_GLOBAL_SCALE, HAS_BIAS, PLAN,
):  # fmt: skip
    """A tile that several blocks of the persistent grid share: this block's partial tile goes to its slot
    of ``workspace [blocks, 2, block_m, block_n]`` (0 for its first tile, 1 for its last), then it draws a
    ticket; the last of the tile's blocks resets the counter, adds the partial tiles in block order (the
    result does not depend on which finishes last) and runs the epilogue."""
    slot = 0
    if first < tile * iterations:
        slot = 1
    shape = [PLAN.block_m, PLAN.block_n]
    tv.store_global(workspace, total, offsets=[tv.block_idx(0), slot, 0, 0], dims=[2, 3])
    first_block = tile * iterations // per_block
    last_block = ((tile + 1) * iterations - 1) // per_block
    ticket = tv.atomic_add_scalar(counters, tile, 1)
    if ticket == last_block - first_block:
        tv.atomic_exchange_scalar(counters, tile, 0)
        result = tv.register_tensor(tv.float32, shape, init=0.0)
        for block in range(first_block, last_block + 1):
            part = 0
            if block * per_block < tile * iterations:
                part = 1
            result = result + tv.load_global(workspace, offsets=[block, part, 0, 0], shape=shape, dims=[2, 3])
        _epilogue(result, global_scale, bias, out, m0, n0, HAS_GLOBAL_SCALE, HAS_BIAS, PLAN)


@functools.cache
def decode_kernel(num_warps: int, max_registers: int | None = None) -> tv.Kernel:
    """The decode kernel for blocks of ``num_warps`` warps whose threads take at most ``max_registers``
    registers (None: ptxas' choice); one ``tv.Kernel`` each, made once."""
    return tv.kernel(_body, num_warps=num_warps, max_registers=max_registers)

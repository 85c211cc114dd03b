"""The launch configuration of the quantized GEMM kernel, and the heuristic that picks one per shape.

The autotuner searches :data:`SEARCH_SPACE` (every combination is a valid configuration for every format;
those whose registers spill are merely slow) and passes its choice to ``qgemm(..., config=...)``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

from tilevm.ir.program import check_max_registers
from tilevm.ops.qgemm import prelayout

__all__ = [
    "PREFILL_SPACE",
    "RASTER",
    "SEARCH_SPACE",
    "PrefillConfig",
    "QGemmConfig",
    "decode_config",
    "default_config",
    "prefetch_fits",
    "prefill_config",
    "search_space",
    "staged_config",
    "uses_prefill",
    "uses_staged_decode",
    "warpgroup_config",
]


@dataclass(frozen=True)
class QGemmConfig:
    """How one launch tiles the GEMM.

    - ``num_warps``: warps per block, ``k_warps`` of them across k (each takes its turn of an iteration's
      chunks) and ``num_warps / k_warps`` across the columns; each warp owns ``n_tiles`` mma m16 atoms of
      the weight (16 columns of the output each), so a block covers ``block_n = 16 * n_tiles * num_warps /
      k_warps``
      columns, and a grid has a block per ``block_n`` columns, ``block_m`` rows and ``split_k`` runs of
      iterations (the blocks of a tile add their partial sums in a float32 workspace).
    - ``block_m``: rows of X per block (a multiple of 8: an mma atom's rows of X); 8 for up to 8 rows.
    - ``chunks``: pre-layout chunks (``chunk_k(bits)`` values of k each) per loop iteration and warp: each
      thread issues ``chunks * n_tiles * loads_per_chunk(bits)`` 16-byte weight loads per iteration. An
      iteration must hold whole scale groups (``kernel.plan_error``).
    - ``prefetch``: load the next iteration's weights and X before computing this one's (registers double
      buffered), so that a load's latency overlaps a whole iteration of work.
    - ``stream_k``: a persistent grid of as many blocks as the GPU runs at once, which share the tiles'
      iterations in equal runs (a tile split between blocks adds their partial sums in a float32
      workspace), so that no wave is left part full; ``split_k`` is then 1.
    - ``max_registers``: the registers a thread may take (``tv.kernel``'s cap, 24 to 255; None: ptxas'
      choice). ptxas schedules the loop for its budget: a cap above its own choice can buy loads further
      ahead of their use at the cost of blocks an SM.
    """

    num_warps: int = 4
    n_tiles: int = 2
    block_m: int = 16
    chunks: int = 1
    prefetch: bool = True
    k_warps: int = 1
    split_k: int = 1
    stream_k: bool = False
    max_registers: int | None = None

    def __post_init__(self) -> None:
        for name, allowed in SEARCH_SPACE.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"QGemmConfig.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}"
                )
        _check_registers("QGemmConfig", self.max_registers)
        if self.num_warps % self.k_warps:
            raise ValueError(f"QGemmConfig.k_warps={self.k_warps} must divide num_warps={self.num_warps}")
        if self.stream_k and self.split_k != 1:
            raise ValueError(
                f"QGemmConfig.stream_k shares k between blocks itself: split_k must be 1, got {self.split_k}"
            )

    @property
    def n_warps(self) -> int:
        """Warps across the block's columns."""
        return self.num_warps // self.k_warps

    @property
    def block_n(self) -> int:
        """Columns of W (rows of the output's transpose) per block."""
        return prelayout.N_GROUP * self.n_tiles * self.n_warps


def _check_registers(config: str, max_registers: int | None) -> None:
    try:
        check_max_registers(max_registers)
    except ValueError as error:
        raise ValueError(f"{config}.{error}") from None


#: the values each field may take (but ``max_registers``, any cap ``tv.kernel`` takes)
SEARCH_SPACE: dict[str, tuple[object, ...]] = {
    "num_warps": (1, 2, 4, 8),
    "n_tiles": (1, 2, 4),
    "block_m": (8, 16, 32, 64),
    "chunks": (1, 2, 4, 8),
    "prefetch": (False, True),
    "k_warps": (1, 2, 4, 8),
    "split_k": (1, 2, 3, 4, 6, 8),
    "stream_k": (False, True),
}


def search_space(m: int) -> list[QGemmConfig]:
    """Every valid configuration for ``m`` rows of X: ``block_m`` no larger than ``m`` needs (8 for up to
    8 rows). Whether an iteration holds whole groups depends on the weight (``kernel.plan_error``)."""
    rows = [size for size in SEARCH_SPACE["block_m"] if size < m + 8] or [8]
    fields = [SEARCH_SPACE[name] if name != "block_m" else tuple(rows) for name in SEARCH_SPACE]
    configs = (dict(zip(SEARCH_SPACE, values)) for values in itertools.product(*fields))
    return [
        QGemmConfig(**config)
        for config in configs
        if config["num_warps"] % config["k_warps"] == 0 and not (config["stream_k"] and config["split_k"] > 1)
    ]


@dataclass(frozen=True)
class PrefillConfig:
    """How the prefill kernel (``prefill``: both operands staged in shared memory) tiles a large-M GEMM.

    - ``n_warps`` x ``m_warps`` warps a block (4 or 8 in all), each owning ``n_tiles`` mma m16 atoms of the
      weight's rows and ``m_tiles`` m8 atoms of X's: a block covers ``block_n = 16 * n_tiles * n_warps``
      columns of the output and ``block_m = 8 * m_tiles * m_warps`` rows.
    - ``chunks``: pre-layout chunks (``chunk_k(bits)`` values of k each) a sub-step multiplies at once: its
      operands are in registers together (the weights dequantized), so a sub-step of about 64 values of k
      keeps the registers below 255 with a 64-register accumulator.
    - ``steps``: sub-steps an iteration, the unit of the pipeline: an iteration copies ``steps * chunks``
      chunks of the weight and the X window they multiply into one of ``stages`` buffers of shared
      memory, ``stages - 1`` iterations ahead of the one it computes.
    - ``split_k``: blocks that share a tile's iterations, in equal runs, and add their float32 partial
      tiles as the decode kernel's do: the blocks of few, wide tiles (at decode M, one warp across m)
      fill the GPU so.
    - ``max_registers``: as ``QGemmConfig``'s.
    - ``warpgroups``: each iteration's weights are dequantized into shared memory (in true k order, the
      tensor cores' canonical layout) and multiplied with X's window there by a dot from shared memory
      (``wgmma`` on sm_90a, run by the block's warpgroups): one warp across m, 4 or 8 warps, a multiple
      of 64 values of k an iteration.
    - ``running``: with ``warpgroups``, the dots left running across an iteration's barrier (0 or 1), so
      that the tensor cores go on from one iteration's dot to the next; it takes a buffer of dequantized
      weights more, and the copies run one iteration less far ahead.
    - ``raster``: the blocks take their tiles in bands of ``raster`` row tiles, column after column down
      a band, so that the blocks running at once read a few columns of the weights and rows of X, which
      L2 keeps, rather than every column of the weights for one or two rows of X (1: in rows).
    """

    n_warps: int = 4
    m_warps: int = 2
    n_tiles: int = 2
    m_tiles: int = 8
    chunks: int = 1
    steps: int = 2
    stages: int = 3
    split_k: int = 1
    max_registers: int | None = None
    warpgroups: bool = False
    running: int = 0
    raster: int = 1

    def __post_init__(self) -> None:
        for name, allowed in PREFILL_SPACE.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"PrefillConfig.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}"
                )
        _check_registers("PrefillConfig", self.max_registers)
        if self.num_warps not in (4, 8):
            raise ValueError(
                f"PrefillConfig: n_warps * m_warps must be 4 or 8, got {self.n_warps} * {self.m_warps}"
            )
        if not isinstance(self.warpgroups, bool):
            raise ValueError(f"PrefillConfig.warpgroups must be a bool, got {self.warpgroups!r}")
        if self.running not in (0, 1) or (self.running and not self.warpgroups):
            raise ValueError(f"PrefillConfig.running is 0, or 1 with warpgroups, got {self.running!r}")
        if self.warpgroups and (self.m_warps != 1 or self.block_n % 64 or self.stages < 3 + self.running):
            raise ValueError(
                "PrefillConfig.warpgroups needs one warp across m, a multiple of 64 columns a block "
                f"(16 * n_tiles * n_warps) and 3 stages or more (4 with running dots), got "
                f"m_warps={self.m_warps}, {self.block_n} columns and {self.stages} stages"
            )

    @property
    def num_warps(self) -> int:
        return self.n_warps * self.m_warps

    @property
    def block_n(self) -> int:
        """Columns of W (rows of the output's transpose) per block."""
        return prelayout.N_GROUP * self.n_tiles * self.n_warps

    @property
    def block_m(self) -> int:
        """Rows of X per block."""
        return 8 * self.m_tiles * self.m_warps

    def shared_bytes(self, bits: int, group_size: int | None = 16, zeros: bool = True) -> int:
        """The bytes of the stages' buffers (all the shared memory the kernel takes) for ``bits``-bit codes,
        16-bit X, and the rows of 16-bit scales (and of zero points with ``zeros``) in groups of
        ``group_size`` that an iteration applies (none per channel: ``group_size=None``). By default the
        most any format takes: groups of 16 with zero points (e8m0 and ue4m3 scales take half as much)."""
        stage_k = self.steps * self.chunks * prelayout.chunk_k(bits)
        rows = 0 if group_size is None else max(1, stage_k // group_size) * (2 if zeros else 1)
        operands = stage_k * (2 * self.block_m + self.block_n * bits // 8)
        buffers = 2 + self.running if self.warpgroups else 0
        dequantized = buffers * 2 * stage_k * self.block_n
        return self.stages * (operands + rows * 2 * self.block_n) + dequantized

    def fits(self, bits: int) -> bool:
        """Whether a block's shared memory for ``bits``-bit codes fits an H100's (227 KB) in every format."""
        return self.shared_bytes(bits) <= SHARED_BYTES


#: the values each field of a ``PrefillConfig`` may take
PREFILL_SPACE: dict[str, tuple[int, ...]] = {
    "n_warps": (1, 2, 4, 8),
    "m_warps": (1, 2, 4, 8),
    "n_tiles": (1, 2, 4),
    "m_tiles": (1, 2, 4, 8, 16, 32),
    "chunks": (1, 2, 4),
    "steps": (1, 2, 4),
    "stages": (2, 3, 4, 5, 6),
    "split_k": (1, 2, 3, 4, 6, 8),
    "raster": (1, 2, 4, 8, 16),
}
#: the M from which the prefill kernel runs (where it fills the machine: ``uses_prefill``)
PREFILL_M = 65
#: the M from which it runs on the warpgroups (a whole block of ``warpgroup_config``'s rows)
WARPGROUP_M = 256
#: the shared memory a block may take on an H100 (227 KB)
SHARED_BYTES = 227 * 1024


def uses_prefill(m: int, n: int) -> bool:
    """Whether ``default_config`` picks the prefill kernel for ``m`` rows of X and ``n`` columns: from
    ``PREFILL_M`` rows, where its 128 x 128 tiles are at least as many as an H100's SMs (below that, the
    decode kernel's smaller tiles keep more SMs busy)."""
    return m >= PREFILL_M and -(-m // 128) * -(-n // 128) >= _SMS


@functools.cache
def prefill_config(bits: int) -> PrefillConfig:
    """The prefill kernel's configuration for ``bits``-bit codes: sub-steps of at least 64 values of k and
    iterations of at least 128, in warps of 32 columns by 128 rows (2 x 16 mma atoms: the dequantized
    weights serve 16 atoms of X) for 4 and 8 bits, whose sub-steps of 64 values of k leave the registers
    room for them (4 warps, a block of 128 x 128, for 4 bits; 8 warps, 256 x 128, for 8 bits; 2 stages).
    The other widths' chunks make sub-steps of 128 or 256 values of k, which spill with 128 rows a warp:
    their warps take 32 x 64, 4 a block of 128 x 64, with 3 stages where shared memory holds them. H100,
    M = 4096, 8192x8192 (torch fp16: 716 µs): int4 1299 µs against 1481 for 128 x 64 (and 1309 for 8 warps
    of 256 x 128 and 3 stages), int8 1329 against 1689 (1382 for 4 warps of 128 x 128)."""
    chunk = prelayout.chunk_k(bits)
    chunks = max(1, 64 // chunk)
    steps = max(1, 128 // (chunks * chunk))
    fields = {"m_warps": 1, "chunks": chunks, "steps": steps}
    if bits in (4, 8):
        return PrefillConfig(**fields, n_warps=bits, m_tiles=16, stages=2)  # 4 warps for 4 bits, 8 for 8
    stage_bytes = PrefillConfig(**fields, stages=2).shared_bytes(bits) // 2
    return PrefillConfig(**fields, stages=min(3, SHARED_BYTES // stage_bytes))


#: the bands of row tiles in which the warpgroups' blocks take their tiles (``PrefillConfig.raster``) where
#: the weights take ``RASTER_BYTES`` or more, twice an H100's L2. H100, M = 4096, µs
#: (``benchmarks/prefill_configs.py``, bands of 1, 4, 8 and 16 at 8192x8192):
#:
#: | weights | rows | bands of 8 |
#: | --- | ---: | ---: |
#: | int4 8192x8192 (32 MiB) | 840, 842 | 852, 856 (4: 852, 16: 865) |
#: | int8 8192x8192 (64 MiB) | 896, 901 | 896, 900 (4: 898, 16: 909) |
#: | int4 28672x8192 (112 MiB) | 3269 | 3231 |
#: | int8 28672x8192 (224 MiB) | 3589 | 3418 |
RASTER, RASTER_BYTES = 8, 96 * 2**20

#: the widths whose prefill runs on the warpgroups where the GPU has them (``warpgroup_config``)
WARPGROUP_WIDTHS = (4, 8)


@functools.cache
def warpgroup_config(bits: int) -> PrefillConfig:
    """The prefill kernel on the warpgroups (``PrefillConfig.warpgroups``: ``wgmma``, sm_90a) for 4 and 8
    bits: 8 warps, blocks of 128 columns by 256 rows of X (each warpgroup's accumulator 64 x 256), an
    iteration of 64 values of k, 4 stages. H100, M = 4096, 8192x8192 (torch fp16: 716 to 729 µs), µs
    (``benchmarks/prefill_configs.py``):

    | blocks (columns x rows), stages | int4 | int8 |
    | --- | ---: | ---: |
    | ``prefill_config`` (mma.sync) | 1251 | 1334 |
    | 128 x 128, 3 (before the 16-byte stores of ``PrefillPlan.stored``) | 1410 | 1504 |
    | 128 x 256, 3 (the copies issued before the dot) | 958 | 986 |
    | 128 x 256, 4, the copies issued before the dot | 939 | 990 |
    | 128 x 256, 4, the dot issued first | 883 | 934 |
    | the same, the copies with cp.async's ignore-src predicate (the default) | 855 | 913 |
    | 128 x 256, 5 | 925 | |
    | 128 x 256, 4, a dot left running (``running=1``) | 941 | 995 |

    At 4096 x 28672 x 8192, before the dot went first: int4 3443 against 4592 µs, int8 3648 against 4895
    (0.78 and 0.73 of torch fp16)."""
    chunks = max(1, 64 // prelayout.chunk_k(bits))
    return PrefillConfig(
        n_warps=8, m_warps=1, n_tiles=1, m_tiles=32, chunks=chunks, steps=1, stages=4, warpgroups=True
    )


@functools.cache
def default_config(
    m: int,
    n: int,
    k: int,
    bits: int,
    device: str = "cuda",
    group_size: int | None = None,
    warpgroups: bool = False,
    float_codes: bool = False,
) -> QGemmConfig | PrefillConfig:
    """A configuration for ``[m, k] x [n, k]^T`` with ``bits``-bit codes in groups of ``group_size`` values
    of k (None: per channel), from the sweeps of ``benchmarks/qgemm_sweep.py`` on an H100: the prefill
    kernel from ``PREFILL_M`` rows and enough tiles (``uses_prefill``: ``prefill_config``, or
    ``warpgroup_config`` for 4 and 8 bits from 256 rows, a whole block of it, where the GPU has the
    warpgroups' ``wgmma``: ``warpgroups``; its blocks in bands of ``RASTER`` row tiles where the weights
    take ``RASTER_BYTES`` or more), and at decode sizes where it streams better than the decode
    kernel (``uses_staged_decode``: ``staged_config``, which tells ``float_codes`` from integers); the
    decode kernel's ``decode_config`` otherwise, and always in the interpreter (the fewest
    instructions)."""
    block_m = 8 if m <= 8 else 16 if m <= 16 else 32 if m <= 32 else 64
    if device == "cpu":
        chunks = max(1, _group_chunks(bits, k, group_size))
        return QGemmConfig(num_warps=4, n_tiles=1, block_m=block_m, chunks=chunks, prefetch=False)
    if uses_prefill(m, n):
        if warpgroups and bits in WARPGROUP_WIDTHS and m >= WARPGROUP_M:
            if n * k * bits // 8 >= RASTER_BYTES:
                return dataclasses.replace(warpgroup_config(bits), raster=RASTER)
            return warpgroup_config(bits)
        return prefill_config(bits)
    if uses_staged_decode(m, n, k, bits):
        return staged_config(bits, block_m, n, k, group_size, float_codes)
    return decode_config(m, n, k, bits, group_size)


def _group_chunks(bits: int, k: int, group_size: int | None) -> int:
    """The chunks an iteration of the decode kernel takes to hold whole groups (``kernel.plan_error``)."""
    group = group_size if group_size not in (None, 16, k) else 1
    return max(1, group // prelayout.chunk_k(bits))


@functools.cache
def decode_config(m: int, n: int, k: int, bits: int, group_size: int | None = None) -> QGemmConfig:
    """The decode kernel's configuration on a GPU. At decode (``m <= 8``) the 8 warps of a block all split
    k, each with one atom of 16 columns, so that blocks are narrow and many, with many loads in flight;
    for 9 to 16 rows of a weight of 8192 columns or more whose chunk is one load (1, 2, 4 and 8 bits), 4
    warps split k and 2 split the columns.
    For 4 and 8 bits an iteration spans 128 values of k, and the next iteration's loads are in flight
    during this one's work (``prefetch``); the other widths decode with more instructions a byte and take
    iterations of about 256 values of k, prefetched only where the registers hold two (``prefetch_fits``:
    1 and 2 bits). Up to 8 rows of 2 and 3 bits where k is at least n and the weight is 8192 x 8192 or
    larger (``_two_tiles``), each warp takes two atoms of 16 columns and half the values of k (2 bits:
    128; 3 bits: one chunk of 256), so that each load of X serves twice the weights. ``split_k`` blocks
    share a tile when n leaves fewer tiles than an H100 has SMs. Larger m tiles rows as well and splits
    nothing. ``chunks`` is raised to hold whole groups. The registers are capped where that helps
    (``_decode_registers``)."""
    chunk = prelayout.chunk_k(bits)
    fit = _group_chunks(bits, k, group_size)
    block_m = 8 if m <= 8 else 16 if m <= 16 else 32 if m <= 32 else 64
    if m > 16:
        n_tiles = 1 if n <= 4096 else 2
        return QGemmConfig(num_warps=4, n_tiles=n_tiles, block_m=block_m, chunks=fit, prefetch=False)
    warps, n_tiles = 8, 2 if _two_tiles(m, n, k, bits) else 1
    # 9 to 16 rows of a wide weight whose chunk is one load: two warps across n (H100, M=16: 0.8 to 0.9x
    # the time for 2, 4 and 8 bits at 8192 and 28672 columns, but 1.1x for 3, 5, 6 and 7 bits, and too few
    # blocks at 4096 columns)
    wide = m > 8 and n >= 8192 and prelayout.loads_per_chunk(bits) == 1
    k_warps = 4 if wide else warps
    chunks = max(fit, (128 if bits in (4, 8) else 256 // n_tiles) // chunk, 1)
    tiles = -(-n // (16 * n_tiles * (warps // k_warps)))
    iterations = -(-k // (k_warps * chunks * chunk))
    split_k = 1
    if tiles < _SMS:
        split_k = max(
            s for s in SEARCH_SPACE["split_k"] if s == 1 or (tiles * s <= 2 * _SMS and iterations >= 2 * s)
        )
    prefetch = prefetch_fits(bits, chunks, n_tiles)
    return QGemmConfig(
        warps, n_tiles, block_m, chunks, prefetch, k_warps=k_warps, split_k=split_k,
        max_registers=_decode_registers(m, n, k, bits),
    )  # fmt: skip


def _two_tiles(m: int, n: int, k: int, bits: int) -> bool:
    """Whether the decode kernel's warps take two atoms of columns (``decode_config``), from the H100 sweep
    of ``benchmarks/qgemm_sweep.py --variants`` at M = 1 and 4: for 2 and 3 bits where k is at least n,
    from 8192 x 8192 weights. µs, default against two atoms (2 bits: 128 values of k, a cap of 96
    registers; 3 bits: no cap):

    - 2 bits, M = 1: 15.2 -> 14.1 at 8192x8192, 36.3 -> 32.5 at 8192x28672; M = 4: 17.3 -> 14.4, 36.6 ->
      32.6;
    - 3 bits, M = 1: 18.6 -> 17.1 and 44.7 -> 42.3; M = 4: 17.8 -> 17.5 and 45.5 -> 42.5;
    - where k < n (28672x8192) they gain nothing (2 bits: 0.98 to 1.01x the time; 3 bits: 1.03x), and at
      4096x4096 too few blocks are left (1.05 to 1.16x)."""
    return m <= 8 and bits in (2, 3) and k >= n and n * k >= 8192 * 8192


def _decode_registers(m: int, n: int, k: int, bits: int) -> int | None:
    """The register cap of the decode kernel's 8-warp blocks (``QGemmConfig.max_registers``), from the
    H100 sweep of ``benchmarks/qgemm_sweep.py --caps`` at the benchmark's shapes. Left to itself, ptxas
    gives these loops 72 to 80 registers (3 blocks an SM); with a cap of 96 or 128 it takes more and
    schedules the loads and the decoding further apart, which pays more than the third block:

    - 5, 6 and 7 bits, and 3 bits where k is at least n: 96 (1.03 to 1.27x faster: int6 at 8192x28672,
      83.4 -> 66.5 µs; but 0.93x for 3 bits at 28672x8192);
    - 9 to 16 rows of 1, 2, 4 and 8 bits (a chunk of one load, prefetched): 128 (ptxas' own choice spills
      nothing but stalls: int2 at 8192x28672, 62.7 -> 52.5 µs; 1.02 to 1.25x, 0.96x for int8 at 4096x4096);
      up to 8 rows of these, ptxas' choice is best (a cap of 128 took 1.1x as long for int4);
    - two atoms of columns a warp (``_two_tiles``): 96 for 2 bits (ptxas' choice: 16.7 against 14.1 µs at
      8192x8192), none for 3 bits (96: 47.1 against 42.3 µs at 8192x28672)."""
    if _two_tiles(m, n, k, bits):
        return 96 if bits == 2 else None
    if bits in (5, 6, 7) or (bits == 3 and k >= n):
        return 96
    if m > 8 and prelayout.loads_per_chunk(bits) == 1:
        return 128
    return None


def uses_staged_decode(m: int, n: int, k: int, bits: int) -> bool:
    """Whether ``default_config`` runs a decode shape (``m <= 16``) with the prefill kernel
    (``staged_config``), from the H100 sweep of ``benchmarks/qgemm_sweep.py --prefill`` at the benchmark's
    shapes. Its blocks of 64 columns read X once into shared memory for 4 warps, where the decode kernel's
    warps each read their own from L2, and stream the weights through shared memory, not registers. So it
    wins where the decode kernel's registers or its reads of X run short:

    - 9 to 16 rows of widths whose chunk is several loads (3, 5, 6, 7 bits: 1.1 to 2.1x faster at 8192x8192
      and above), of 1 and 2 bits (1.05 to 1.06x against the decode kernel's register cap of 128 at
      8192x8192 and 8192x28672), of every width at 16384 columns or more (1.05 to 1.07x at
      28672x8192), and of 4 bits where k is 16384 or more (int4 at 8192x28672: 61.9 -> 52 µs; at
      8192x8192 21.0 against 20, too close to call; int8 at 8192x28672 90.1 against 90.3);
    - up to 8 rows of 5 and 7 bits where k is at least n (1.06 to 1.24x at 8192x8192 and 8192x28672;
      0.95 to 0.98x at 28672x8192, where the decode kernel stays).

    Below 8192 x 8192 weights the decode kernel's smaller tiles keep more SMs busy (0.82 to 1.13x)."""
    if m > 16 or n * k < 8192 * 8192:
        return False
    if m > 8:
        return prelayout.loads_per_chunk(bits) > 1 or bits <= 2 or n >= 16384 or (bits == 4 and k >= 16384)
    return bits in (5, 7) and k >= n


def staged_config(
    bits: int, block_m: int, n: int, k: int, group_size: int | None = None, float_codes: bool = False
) -> PrefillConfig:
    """The prefill kernel at decode size (``uses_staged_decode``): one warp of ``block_m`` rows across m
    and 4 across n, ``prefill_config``'s sub-steps made to hold whole groups of ``group_size`` (so that
    the scales multiply partial sums, not codes: ``prefill.prefill_plan``), and 4 blocks a tile (8 at 4096
    columns or fewer), so that a grid has about 512 blocks or more; fewer where k holds fewer than two
    iterations a block. From the H100 sweeps (``benchmarks/qgemm_sweep.py --prefill`` and ``--variants``,
    ``benchmarks/prefill_configs.py``):

    - 2 stages (more shared memory buys nothing when a stage is this small), but 3 for 4 bits (M = 16: 57
      -> 55 µs at 28672x8192, 57 -> 52 at 8192x28672); 3 stages were up to 1.3x slower for 6, 7 and 8
      bits, and equal for 2, 3 and 5;
    - warps of one atom of 16 columns, but two for 2 and 3 bits, so that a block reads X once for 128
      columns (M = 16: int3 20.9 -> 19.7 µs at 8192x8192, 52.5 -> 48.7 at 28672x8192, 52.3 -> 48.4 at
      8192x28672; int2 19.2 -> 18.7, 46.1 -> 43.8, 46.3 -> 46.3; 1.05 to 1.33x slower for 5 bits);
    - registers capped at 96 for 5 bits (1.02 to 1.13x faster, int5 at 8192x28672 M = 16 73.0 -> 65.4 µs;
      no gain for the other widths);
    - where K is less than N (``_wide_blocks``), blocks of 128 columns for 6 to 8 bits, two atoms a warp
      for 6 and 8 bits and 8 warps for 7, with 2 blocks a tile: they read X half as often. M = 16 (and
      12), µs: 28672x8192 int6 78.2 -> 69.8 (77.7 -> 69.6), int7 87.3 -> 85.0 (86.2 -> 84.7), int8 89.6 ->
      86.5 (88.0 -> 86.3), float8_e4m3 89.1 -> 86.5; 16384x4096 int6 29.6 -> 26.8, int7 31.4 -> 28.1,
      int8 30.9 -> 31.3; but float6_e3m2 (``float_codes``) 75.1 -> 77.1 at 28672x8192, which keeps 64;
      at 8192x28672 the default's 4 blocks a tile stay (1.01 to 1.02x faster than these)."""
    base = prefill_config(bits)
    chunks = max(base.chunks, _group_chunks(bits, k, group_size))
    steps = max(1, base.steps * base.chunks // chunks)
    stage_k = steps * chunks * prelayout.chunk_k(bits)
    iterations = -(-k // stage_k)
    n_warps, n_tiles = 4, 2 if bits in (2, 3) else 1
    split_k = 8 if n <= 4096 else 4
    if _wide_blocks(n, k, bits, float_codes):
        n_warps, n_tiles, split_k = (8, 1, 2) if bits == 7 else (4, 2, 2)
    while split_k > 1 and iterations < 2 * split_k:
        split_k //= 2
    return PrefillConfig(
        n_warps=n_warps, m_warps=1, n_tiles=n_tiles, m_tiles=block_m // 8, chunks=chunks, steps=steps,
        stages=3 if bits == 4 else 2, split_k=split_k, max_registers=96 if bits == 5 else None,
    )  # fmt: skip


def _wide_blocks(n: int, k: int, bits: int, float_codes: bool) -> bool:
    """Whether ``staged_config``'s blocks take 128 columns: 6 to 8 bits where K is less than N (from 16384
    columns, where the prefill kernel runs these rows: ``uses_staged_decode``), but 6-bit floats."""
    return bits in (6, 7, 8) and k < n and not (float_codes and bits == 6)


def prefetch_fits(bits: int, chunks: int, n_tiles: int) -> bool:
    """Whether the registers hold two iterations' weights (``prefetch``) without cutting the warps an SM
    runs: for the widths whose chunk is one 16-byte load (1, 2, 4 and 8 bits), up to 4 loads a thread an
    iteration. The other widths' decoding takes the registers (3 bits with prefetch: 136 registers a
    thread for sm_90, and 0.65x the speed at 28672x8192 on an H100)."""
    return prelayout.loads_per_chunk(bits) == 1 and chunks * n_tiles <= 4


#: the SMs of an H100
_SMS = 132

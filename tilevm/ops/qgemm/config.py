"""The launch configuration of the quantized GEMM kernel, and the heuristic that picks one per shape.

The autotuner searches :data:`SEARCH_SPACE` (every combination is a valid configuration for every format;
those whose registers spill are merely slow) and passes its choice to ``qgemm(..., config=...)``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

from tilevm.ops.qgemm import prelayout

__all__ = ["SEARCH_SPACE", "QGemmConfig", "default_config", "search_space"]


@dataclass(frozen=True)
class QGemmConfig:
    """How one launch tiles the GEMM.

    - ``num_warps``: warps per block; each warp owns ``n_tiles`` mma n8 tiles (``8 * n_tiles`` columns),
      so a block covers ``block_n = 8 * n_tiles * num_warps`` columns, and a grid has a block per
      ``block_n`` columns and ``block_m`` rows.
    - ``block_m``: rows of X per block (a multiple of 16: the mma's m); at decode (M <= 16) 16.
    - ``chunks``: pre-layout chunks (``chunk_k(bits)`` values of k each) per loop iteration: each thread
      issues ``chunks * n_tiles * loads_per_chunk(bits)`` 16-byte weight loads per iteration.
    - ``prefetch``: load the next iteration's weights and X before computing this one's (registers double
      buffered), so that a load's latency overlaps a whole iteration of work.
    """

    num_warps: int = 4
    n_tiles: int = 2
    block_m: int = 16
    chunks: int = 1
    prefetch: bool = True

    def __post_init__(self) -> None:
        for name, allowed in SEARCH_SPACE.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"QGemmConfig.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}"
                )

    @property
    def block_n(self) -> int:
        """Columns of W (rows of the output's transpose) per block."""
        return prelayout.N_GROUP * self.n_tiles * self.num_warps


#: the values each field may take
SEARCH_SPACE: dict[str, tuple[object, ...]] = {
    "num_warps": (1, 2, 4, 8),
    "n_tiles": (1, 2, 4),
    "block_m": (16, 32, 64),
    "chunks": (1, 2, 4),
    "prefetch": (False, True),
}


def search_space(m: int) -> list[QGemmConfig]:
    """Every configuration worth timing for ``m`` rows of X: ``block_m`` no larger than ``m`` needs (16 at
    decode)."""
    rows = [size for size in SEARCH_SPACE["block_m"] if size < m + 16] or [16]
    fields = [SEARCH_SPACE[name] if name != "block_m" else tuple(rows) for name in SEARCH_SPACE]
    return [QGemmConfig(*values) for values in itertools.product(*fields)]


@functools.cache
def default_config(m: int, n: int, k: int, bits: int, device: str = "cuda") -> QGemmConfig:
    """A configuration for ``[m, k] x [n, k]^T`` with ``bits``-bit codes: enough blocks to fill the GPU
    (``n / block_n`` blocks, so fewer columns per block when n is small), ``block_m`` 16 at decode, and
    registers kept from spilling (checked with ``ptxas -v`` for sm_90): a thread holds ``block_m * kc / 32``
    values of X per iteration (``kc`` = 512 for codes of 1, 3, 5 and 7 bits), so the registers are double
    buffered (``prefetch``) only where an iteration spans at most 256 values of k (4 and 8 bits)."""
    del k  # the loop over k is sequential in a block: k changes nothing here until K is split
    block_m = 16 if m <= 16 else 32 if m <= 32 else 64
    if device == "cpu":  # the interpreter: the fewest instructions
        return QGemmConfig(num_warps=4, n_tiles=1, block_m=block_m, chunks=1, prefetch=False)
    n_tiles = 1 if n <= 4096 else 2
    chunk = prelayout.chunk_k(bits)
    if chunk > 128 or block_m > 16:
        return QGemmConfig(num_warps=4, n_tiles=n_tiles, block_m=block_m, chunks=1, prefetch=False)
    return QGemmConfig(num_warps=4, n_tiles=n_tiles, block_m=block_m, chunks=256 // chunk, prefetch=True)

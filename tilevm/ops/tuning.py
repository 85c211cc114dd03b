"""The quantized GEMM's autotuning: which ``QGemmConfig`` a launch uses, chosen by ``tilevm.autotune`` per
shape, format and device among the configurations worth timing.

The key is M rounded up to a power of two (at least 8: every M up to 8 shares one choice, and a server's
varying batch sizes do not each start a search), N, K, the weight's format, the compute dtype and whether
there is a bias. The candidates are the configurations near ``default_config``'s choice that the sweep of
``benchmarks/qgemm_sweep.py`` found fastest somewhere:

- ``block_m`` as ``default_config`` chooses it for M (rows per block follow M);
- at decode (M <= 16), blocks of 8 warps all across k, 4 all across k, or 8 with 4 across k; one or two
  atoms of 16 columns a warp; the default's iteration and one twice as long (up to 256 values of k);
  split-k over one or two blocks; ``prefetch`` where the registers hold it (``prefetch_fits``);
- at decode, also the prefill kernel with one warp of ``block_m`` rows across m (``config.staged_config``):
  4 or 8 warps of 16 columns, 1, 2, 4 or 8 blocks a tile;
- below the prefill kernel's sizes, the default under each register cap of ``_REGISTER_CAPS`` (the
  others keep the default's: ``config._decode_registers``);
- at prefill below the prefill kernel's sizes, 4 or 8 warps, one or two atoms a warp, with and without
  prefetch where it fits;
- with the prefill kernel (``config.uses_prefill``), its warp grids of 128 x 128 blocks (4 x 2, 2 x 4 and
  8 x 1 warps) and of 128 x 64 blocks (4 x 1 warps, two blocks an SM), and for 4 and 8 bits warps of 32 x
  128 (4 of a 128 x 128 block, 8 of 256 x 128), each with 2, 3 or 4 stages where shared memory holds
  them, and the default grid with iterations twice as long;

and always ``default_config``'s choice first, which is also the answer on the CPU and with
``TILEVM_AUTOTUNE=0``.

>>> len(candidates(1, 8192, 8192, 4, 128)), candidates(1, 8192, 8192, 4, 128)[0].k_warps
(34, 8)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import torch

from tilevm.autotune import Autotuner
from tilevm.ops.qgemm.config import (
    PREFILL_SPACE,
    RASTER,
    WARPGROUP_WIDTHS,
    PrefillConfig,
    QGemmConfig,
    decode_config,
    default_config,
    prefetch_fits,
    staged_config,
    uses_prefill,
    warpgroup_config,
)
from tilevm.ops.qgemm.gpu import runs_wgmma
from tilevm.ops.qgemm.prelayout import chunk_k
from tilevm.ops.quantization import QuantizedWeight, WeightFormat

__all__ = ["TUNER", "candidates", "m_bucket", "tuned_config"]

#: the quantized GEMM's tuner (its choices: ``$TILEVM_CACHE_DIR/autotune/<device>.json``)
TUNER: Autotuner[QGemmConfig | PrefillConfig] = Autotuner("qgemm")
#: (num_warps, k_warps) tried at decode
_DECODE_WARPS = ((8, 8), (4, 4), (8, 4))
#: register caps the default is timed under (``QGemmConfig.max_registers``; None: ptxas' choice)
_REGISTER_CAPS = (None, 96, 128)
#: (n_warps, m_warps, n_tiles, m_tiles) tried with the prefill kernel
_PREFILL_GRIDS = ((4, 2, 2, 8), (2, 4, 4, 4), (8, 1, 1, 16), (4, 1, 2, 8))
#: and those of warps of 32 x 128, where the default's warps are (4 and 8 bits: the others' sub-steps spill)
_TALL_GRIDS = ((4, 1, 2, 16), (8, 1, 2, 16))


def candidates(
    m: int, n: int, k: int, bits: int, group_size: int | None = None, float_codes: bool = False
) -> list[QGemmConfig | PrefillConfig]:
    """The configurations timed for ``[m, k] x [n, k]^T`` with ``bits``-bit codes (floats with
    ``float_codes``) in groups of ``group_size`` (None: per channel), the default first."""
    default = default_config(m, n, k, bits, "cuda", group_size, float_codes=float_codes)
    if uses_prefill(m, n):
        return _prefill_candidates(default, bits)
    decode = decode_config(m, n, k, bits, group_size)
    found: list[QGemmConfig | PrefillConfig] = [default]
    _extend(found, [decode, *_decode_grids(m, bits, decode)])
    if m <= 16:
        staged = staged_config(bits, decode.block_m, n, k, group_size, float_codes)
        grids = itertools.product((4, 8), (1, 2, 4, 8))
        _extend(found, [dataclasses.replace(staged, n_warps=w, split_k=s) for w, s in grids])
    _extend(found, [dataclasses.replace(default, max_registers=cap) for cap in _REGISTER_CAPS])
    return found


def _decode_grids(m: int, bits: int, decode: QGemmConfig) -> list[QGemmConfig]:
    """The decode kernel's warp grids, tiles and iteration lengths near ``decode`` (its register cap)."""
    chunk = chunk_k(bits)
    lengths = [decode.chunks] + ([2 * decode.chunks] if 2 * decode.chunks * chunk <= 256 else [])
    # (num_warps, k_warps, split_k): prefill splits nothing
    if m > 16:
        splits = [(warps, 1, 1) for warps in (4, 8)]
    else:
        splits = [(warps, k_warps, split) for warps, k_warps in _DECODE_WARPS for split in (1, 2)]
    grids = []
    for (num_warps, k_warps, split_k), n_tiles, chunks in itertools.product(splits, (1, 2), lengths):
        fits = prefetch_fits(bits, chunks, n_tiles)
        for prefetch in (True, False) if m > 16 and fits else (fits,):
            fields = {"k_warps": k_warps, "split_k": split_k, "max_registers": decode.max_registers}
            grids.append(QGemmConfig(num_warps, n_tiles, decode.block_m, chunks, prefetch, **fields))
    return grids


def _extend(found: list, configs: list) -> None:
    """Append to ``found`` the ``configs`` it does not hold yet, in order."""
    for config in configs:
        if config not in found:
            found.append(config)


def _prefill_candidates(default: PrefillConfig, bits: int) -> list[QGemmConfig | PrefillConfig]:
    """The prefill kernel's warp grids (``_PREFILL_GRIDS``, and ``_TALL_GRIDS`` where the default's warps
        are as tall) with the default's sub-steps and 2 to 4 stages, and the default's grid with iterations
        twice as long (half the copies' overhead, fewer stages), those whose stages fit in shared memory; the
        default first; for 4 and 8 bits, the warpgroups' configuration last, with its blocks in rows of tiles
    and in bands of ``RASTER`` row tiles."""
    found: list[QGemmConfig | PrefillConfig] = [default]
    steps = [default.steps] + [2 * default.steps] * (2 * default.steps in PREFILL_SPACE["steps"])
    grids = _PREFILL_GRIDS + (_TALL_GRIDS if default.m_tiles == 16 and default.m_warps == 1 else ())
    own = (default.n_warps, default.m_warps, default.n_tiles, default.m_tiles)
    for grid, length, stages in itertools.product(grids, steps, (2, 3, 4)):
        if length != default.steps and grid != own:
            continue
        config = PrefillConfig(*grid, chunks=default.chunks, steps=length, stages=stages)
        if config.fits(bits) and config not in found:
            found.append(config)
    if bits in WARPGROUP_WIDTHS:  # on the warpgroups (elsewhere it runs, through registers, and loses)
        warpgroups = warpgroup_config(bits)
        _extend(found, [warpgroups, dataclasses.replace(warpgroups, raster=RASTER)])
    return found


def m_bucket(m: int) -> int:
    """M as the tuner keys it: rounded up to a power of two, at least 8 (every M up to 8 shares a choice).

    >>> [m_bucket(m) for m in (1, 8, 9, 100)]
    [8, 8, 16, 128]
    """
    return max(8, 1 << (m - 1).bit_length())


def tuned_config(
    rows: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None
) -> QGemmConfig | PrefillConfig:
    """The configuration for ``rows [M, K] @ qweight.T (+ bias)``: the tuner's choice for its key (a search
    the first time a key is seen on a GPU), ``default_config``'s on the CPU."""
    m = rows.shape[0]
    n, k = qweight.shape
    key = (("m", m_bucket(m)), ("bias", bias is not None), *_weight_key(qweight))

    def run(config: QGemmConfig | PrefillConfig) -> torch.Tensor:
        from tilevm.ops.qgemm.matmul import quantized_matmul  # here: matmul imports this module

        return quantized_matmul(rows, qweight, bias, config=config)

    return TUNER.choose(
        key,
        lambda: candidates(key[0][1], n, k, qweight.bits, qweight.group_size, qweight.format.dtype.is_float),
        run,
        lambda: default_config(
            m,
            n,
            k,
            qweight.bits,
            rows.device.type,
            qweight.group_size,
            runs_wgmma(rows.device),
            qweight.format.dtype.is_float,
        ),
        rows.device,
    )


def _weight_key(qweight: QuantizedWeight) -> tuple[tuple[str, object], ...]:
    """The part of the key that the weight fixes (its shape, format and compute dtype)."""
    return _weight_fields(qweight.format, qweight.shape, qweight.compute_dtype)


@functools.lru_cache(maxsize=1024)
def _weight_fields(
    weight_format: WeightFormat, shape: tuple[int, int], compute_dtype: torch.dtype
) -> tuple[tuple[str, object], ...]:
    """The weight's part of the key, made once per format and shape (the custom op makes a weight at every
    call): the format as text (a string caches its hash; the format's dataclass hash costs microseconds on
    every lookup)."""
    n, k = shape
    return (("n", n), ("k", k), ("format", repr(weight_format)), ("compute_dtype", str(compute_dtype)))

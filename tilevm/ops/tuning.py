"""The quantized GEMM's autotuning: which ``QGemmConfig`` a launch uses, chosen by ``tilevm.autotune`` per
shape, format and device among the configurations worth timing.

The key is M rounded up to a power of two (at least 16: every decode M shares one choice, and a server's
varying batch sizes do not each start a search), N, K, the weight's format, the compute dtype and whether
there is a bias. The candidates are the kernel's search space cut to configurations that can be fast:

- ``block_m`` as ``default_config`` chooses it for M (rows per block follow M);
- ``num_warps`` 4 or 8 and ``n_tiles`` 1 or 2 (a block of 32 to 128 columns: N / block_n blocks fill the
  GPU at the benchmark's N);
- ``chunks`` and ``prefetch`` such that an iteration spans at most 512 values of k, 256 with prefetch
  (double-buffered registers): beyond that the registers spill (``ptxas -v``, sm_90), and holds whole
  groups (``kernel.plan_error``);

and always ``default_config``'s choice, which is also the answer on the CPU and with ``TILEVM_AUTOTUNE=0``.
(The candidates split neither the warps nor the blocks across k: ``k_warps`` and ``split_k`` come from
``default_config`` only.)

>>> [c.chunks for c in candidates(1, 8192, 8192, 4, 128) if c.num_warps == 4 and c.n_tiles == 1]
[2, 4, 8, 2, 4]
"""

from __future__ import annotations

import functools

import torch

from tilevm.autotune import Autotuner
from tilevm.ops.qgemm.config import SEARCH_SPACE, QGemmConfig, default_config
from tilevm.ops.qgemm.kernel import plan_error
from tilevm.ops.qgemm.prelayout import chunk_k
from tilevm.ops.quantization import QuantizedWeight, WeightFormat

__all__ = ["TUNER", "candidates", "m_bucket", "tuned_config"]

#: the quantized GEMM's tuner (its choices: ``$TILEVM_CACHE_DIR/autotune/<device>.json``)
TUNER: Autotuner[QGemmConfig] = Autotuner("qgemm")
#: values of k one iteration may span, without and with prefetch (see the module's docstring)
_SPAN, _PREFETCH_SPAN = 512, 256


def candidates(m: int, n: int, k: int, bits: int, group_size: int | None = None) -> list[QGemmConfig]:
    """The configurations timed for ``[m, k] x [n, k]^T`` with ``bits``-bit codes in groups of
    ``group_size`` (None: per channel), the default first; those whose iterations would not hold whole
    groups (``kernel.plan_error``) left out."""
    default = default_config(m, n, k, bits, group_size=group_size)
    group = k if group_size is None else group_size
    chunk = chunk_k(bits)
    found = [default]
    for prefetch in (False, True):
        span = _PREFETCH_SPAN if prefetch else _SPAN
        for chunks in (c for c in SEARCH_SPACE["chunks"] if c * chunk <= span):
            for num_warps in (4, 8):
                for n_tiles in (1, 2):
                    config = QGemmConfig(num_warps, n_tiles, default.block_m, chunks, prefetch)
                    if config not in found and plan_error(bits, chunks, group, k) is None:
                        found.append(config)
    return found


def m_bucket(m: int) -> int:
    """M as the tuner keys it: rounded up to a power of two, at least 16 (every decode M shares a choice).

    >>> [m_bucket(m) for m in (1, 16, 17, 100)]
    [16, 16, 32, 128]
    """
    return max(16, 1 << (m - 1).bit_length())


def tuned_config(rows: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None) -> QGemmConfig:
    """The configuration for ``rows [M, K] @ qweight.T (+ bias)``: the tuner's choice for its key (a search
    the first time a key is seen on a GPU), ``default_config``'s on the CPU."""
    m = rows.shape[0]
    n, k = qweight.shape
    key = (("m", m_bucket(m)), ("bias", bias is not None), *_weight_key(qweight))

    def run(config: QGemmConfig) -> torch.Tensor:
        from tilevm.ops.qgemm.matmul import quantized_matmul  # here: matmul imports this module

        return quantized_matmul(rows, qweight, bias, config=config)

    return TUNER.choose(
        key,
        lambda: candidates(key[0][1], n, k, qweight.bits, qweight.group_size),
        run,
        lambda: default_config(m, n, k, qweight.bits, rows.device.type, qweight.group_size),
        rows.device,
    )


def _weight_key(qweight: QuantizedWeight) -> tuple[tuple[str, object], ...]:
    """The part of the key that the weight fixes (its shape, format and compute dtype)."""
    return _weight_fields(qweight.format, qweight.shape, qweight.compute_dtype)


@functools.lru_cache(maxsize=1024)
def _weight_fields(
    weight_format: WeightFormat, shape: tuple[int, int], compute_dtype: torch.dtype
) -> tuple[tuple[str, object], ...]:
    """The weight's part of the key, made once per format and shape: the format as text (a string caches
    its hash; the format's dataclass hash costs microseconds on every lookup)."""
    n, k = shape
    return (("n", n), ("k", k), ("format", repr(weight_format)), ("compute_dtype", str(compute_dtype)))

"""The quantized GEMM: ``Y = X @ dequant(W).T (+ bias)`` with weights of 1 to 8 bits pre-laid-out for the
kernel's threads (``prelayout``), the DSL kernel (``kernel``), its configuration (``config``) and the
validating entry points: ``qgemm`` on raw tensors, ``quantized_matmul`` on a ``QuantizedWeight``."""

from tilevm.ops.qgemm.config import (
    SEARCH_SPACE,
    PrefillConfig,
    QGemmConfig,
    default_config,
    prefill_config,
    search_space,
)
from tilevm.ops.qgemm.launch import CODE_DTYPES, SCALE_DTYPES, qgemm
from tilevm.ops.qgemm.matmul import quantized_matmul

__all__ = [
    "CODE_DTYPES",
    "SCALE_DTYPES",
    "SEARCH_SPACE",
    "PrefillConfig",
    "QGemmConfig",
    "default_config",
    "prefill_config",
    "qgemm",
    "quantized_matmul",
    "search_space",
]

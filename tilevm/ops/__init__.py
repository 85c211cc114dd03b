"""The op library, written in the DSL (quantized GEMM, attention, quantizers), each op with a torch-facing
wrapper that validates its inputs. It uses only the public API, ``import tilevm as tv``."""

from tilevm.ops.linear import QuantizedLinear, quantize_model
from tilevm.ops.qgemm import quantized_matmul
from tilevm.ops.quantization import QuantizedWeight, WeightFormat, quantize_weight

__all__ = [
    "QuantizedLinear",
    "QuantizedWeight",
    "WeightFormat",
    "quantize_model",
    "quantize_weight",
    "quantized_matmul",
]

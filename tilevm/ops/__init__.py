"""The op library, written in the DSL (quantized GEMM, attention, quantizers), each op with a torch-facing
wrapper that validates its inputs. It uses only the public API, ``import tilevm as tv``."""

from tilevm.ops.quantization import QuantizedWeight, WeightFormat, quantize_weight

__all__ = ["QuantizedWeight", "WeightFormat", "quantize_weight"]

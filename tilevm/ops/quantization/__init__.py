"""Weight quantization for the quantized GEMM: the formats (`WeightFormat`, the MX and NVFP4 presets),
`quantize_weight` and the `QuantizedWeight` it returns (dequantization, saving and loading).

- `formats`: `WeightFormat`, the presets, the supported combinations.
- `scales`: the scale rule of each format (absmax, MX shared exponent, NVFP4 block and global scales).
- `codecs`: torch versions of the reference codec, and float64 narrowing that rounds once.
- `quantize`: `quantize_weight`, `quantize_codes` (codes before the pre-layout) and the MSE search.
- `weight`: `QuantizedWeight`.
"""

from tilevm.ops.quantization.formats import PRESETS, WeightFormat
from tilevm.ops.quantization.quantize import quantize_weight
from tilevm.ops.quantization.weight import QuantizedWeight

__all__ = ["PRESETS", "QuantizedWeight", "WeightFormat", "quantize_weight"]

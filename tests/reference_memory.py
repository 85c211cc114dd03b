"""Global memory for reference-executor tests: values packed by the dtypes reference, and read back."""

import numpy as np
import torch

from tilevm.dtypes import DType, decode, encode, pack, unpack


def to_memory(values, dtype: DType) -> torch.Tensor:
    """Values of ``dtype`` densely packed into a uint8 tensor, as a kernel's global memory."""
    return torch.from_numpy(pack(encode(values, dtype), dtype).copy())


def from_memory(memory: torch.Tensor, dtype: DType, count: int) -> np.ndarray:
    """The first ``count`` values of ``dtype`` in ``memory``, as float64."""
    return decode(unpack(memory.numpy(), dtype, count), dtype).astype(np.float64)

"""Strided global tensors and the tile windows that loads, stores, copies and atomics move.

A window of tile shape S at ``offsets`` along ``dims``: tile coordinate ``c`` reads global index
``offsets[d] + c[k]`` in dimension ``d = dims[k]`` and ``offsets[d]`` in the other dimensions. An element
with any index outside ``[0, size)`` is masked: a load gives ``other`` there and touches no memory, stores
and atomics skip it. In-bounds elements live at ``sum(index * stride)`` elements from the pointer.

>>> import torch
>>> from tilevm.dtypes import float32
>>> from tilevm.runtime.reference.global_memory import tensor_pointer
>>> data = torch.arange(6, dtype=torch.float32)
>>> view = GlobalTensor(tensor_pointer(data, float32, "x"), shape=(2, 3), strides=(3, 1))
>>> load_window(view, (1, 1), (1,), (4,), other=np.float64(-1)).tolist()
[4.0, 5.0, -1.0, -1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tilevm.ir.semantics import binary
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier
from tilevm.runtime.reference.global_memory import Pointer, read_codes, write_codes

__all__ = ["GlobalTensor", "atomic_window", "load_window", "store_window", "window"]


@dataclass(frozen=True, eq=False)
class GlobalTensor:
    """A strided view of global memory with sizes and strides (in elements) known at run time."""

    pointer: Pointer
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def window(
    tensor: GlobalTensor, offsets: tuple[int, ...], dims: tuple[int, ...], tile_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The element address (int64) of each tile element, and whether it lies inside the tensor."""
    addresses = np.zeros(tile_shape, dtype=np.int64)
    inside = np.ones(tile_shape, dtype=bool)
    tile_axis = {dim: axis for axis, dim in enumerate(dims)}
    for dim, (offset, size, stride) in enumerate(zip(offsets, tensor.shape, tensor.strides)):
        index = np.asarray(offset, dtype=np.int64)
        if dim in tile_axis:
            axis = tile_axis[dim]
            extent_shape = [1] * len(tile_shape)
            extent_shape[axis] = tile_shape[axis]
            index = index + np.arange(tile_shape[axis], dtype=np.int64).reshape(extent_shape)
        inside &= (index >= 0) & (index < size)
        addresses = addresses + index * stride
    return addresses, inside


def load_window(
    tensor: GlobalTensor,
    offsets: tuple[int, ...],
    dims: tuple[int, ...],
    tile_shape: tuple[int, ...],
    other: np.ndarray,
) -> np.ndarray:
    """The tile at the window, as a carrier; ``other`` (a carrier scalar) where masked."""
    addresses, inside = window(tensor, offsets, dims, tile_shape)
    result = np.full(tile_shape, other, dtype=np.asarray(other).dtype)
    codes = read_codes(tensor.pointer, addresses[inside], "load")
    result[inside] = codes_to_carrier(codes, tensor.pointer.dtype)
    return result


def store_window(
    tensor: GlobalTensor, offsets: tuple[int, ...], dims: tuple[int, ...], values: np.ndarray
) -> None:
    """Write the carrier tile ``values`` to the window's in-bounds elements."""
    addresses, inside = window(tensor, offsets, dims, values.shape)
    write_codes(tensor.pointer, addresses[inside], carrier_to_codes(values[inside], tensor.pointer.dtype))


def atomic_window(
    op: str, tensor: GlobalTensor, offsets: tuple[int, ...], dims: tuple[int, ...], values: np.ndarray
) -> None:
    """``memory = op(memory, value)`` at each in-bounds element, every update rounded to the dtype.

    Several tile elements may hit one address (a stride of 0); their updates all apply, one after another
    in row-major tile order, as atomics serialize them on the GPU (in some order).
    """
    addresses, inside = window(tensor, offsets, dims, values.shape)
    addresses, values = addresses[inside], values[inside]
    dtype = tensor.pointer.dtype
    remaining = np.arange(addresses.size)
    while remaining.size:
        # One round updates the first pending element of each distinct address.
        _, first = np.unique(addresses[remaining], return_index=True)
        batch = remaining[first]
        old = codes_to_carrier(read_codes(tensor.pointer, addresses[batch], "atomic"), dtype)
        new = binary(op, old, values[batch], dtype)
        write_codes(tensor.pointer, addresses[batch], carrier_to_codes(new, dtype), "atomic")
        remaining = np.delete(remaining, first)

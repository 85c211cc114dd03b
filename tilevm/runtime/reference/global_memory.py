"""Global memory: the bytes of a tensor's storage, addressed through typed pointers, bit-exactly.

A pointer argument becomes a ``Pointer``: a flat writable uint8 numpy view of the tensor's whole storage,
the byte offset of the tensor's first element in it, and the pointer's dtype (which need not be the
tensor's). Element ``i`` of an n-bit pointer occupies bits ``[8 * byte_offset + i * n, ... + n)`` of the
storage, least significant bit first. Byte-aligned dtypes are gathered and scattered as whole bytes through
numpy views; sub-byte ones are read bit by bit and written read-modify-write, so that neighbouring elements
sharing a byte are kept. Every access is checked against the storage: none ever lands outside it.

>>> import torch
>>> from tilevm.dtypes import int4
>>> data = torch.tensor([0x21, 0x43], dtype=torch.uint8)
>>> pointer = tensor_pointer(data, int4, "x")
>>> read_codes(pointer, np.arange(4)).tolist()
[1, 2, 3, 4]
>>> write_codes(pointer, np.array([1]), np.array([0xF], dtype=np.uint8)); hex(int(data[0]))
'0xf1'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tilevm.dtypes import DType, code_storage_dtype
from tilevm.errors import LaunchError
from tilevm.runtime.reference.errors import ExecutionError

__all__ = ["Pointer", "read_codes", "tensor_pointer", "write_codes"]


@dataclass(frozen=True, eq=False)
class Pointer:
    """A typed address into the storage of one tensor."""

    storage: np.ndarray  # flat, writable uint8 view of the whole storage
    byte_offset: int
    dtype: DType
    name: str


def tensor_pointer(tensor: object, dtype: DType, name: str) -> Pointer:
    """A pointer of ``dtype`` to the first element of a CPU ``torch.Tensor`` (any dtype, any strides)."""
    if not isinstance(tensor, torch.Tensor):
        raise LaunchError(f"argument {name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise LaunchError(f"argument {name} is on {tensor.device}; the reference executor needs CPU tensors")
    # A uint8 tensor over the same storage: writes through its numpy view land in the caller's tensor.
    raw = torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage())
    return Pointer(raw.numpy(), tensor.storage_offset() * tensor.element_size(), dtype, name)


def _first_bits(pointer: Pointer, addresses: np.ndarray, what: str) -> np.ndarray:
    """The storage bit position of each element, after checking every element lies inside the storage."""
    nbits = pointer.dtype.nbits
    first = 8 * pointer.byte_offset + addresses.astype(np.int64) * nbits
    outside = (first < 0) | (first + nbits > 8 * pointer.storage.size)
    if outside.any():
        address = int(addresses[outside.nonzero()[0][0]])
        raise ExecutionError(
            f"{what} of element {address} through {pointer.name} ({pointer.dtype}) falls outside the "
            f"tensor's storage ({pointer.storage.size} bytes, the tensor from byte {pointer.byte_offset})"
        )
    return first


def read_codes(pointer: Pointer, addresses: np.ndarray, what: str = "read") -> np.ndarray:
    """The codes of the elements at ``addresses`` (a 1-D int array, in elements from the pointer)."""
    dtype = pointer.dtype
    first = _first_bits(pointer, addresses, what)
    if dtype.nbits % 8 == 0:
        width = dtype.nbits // 8
        gathered = pointer.storage[(first // 8)[:, None] + np.arange(width)]
        return np.ascontiguousarray(gathered).view(f"<u{width}")[:, 0].astype(code_storage_dtype(dtype))
    positions = first[:, None] + np.arange(dtype.nbits)
    bits = (pointer.storage[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1
    weights = np.uint64(1) << np.arange(dtype.nbits, dtype=np.uint64)
    return (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64).astype(code_storage_dtype(dtype))


def write_codes(pointer: Pointer, addresses: np.ndarray, codes: np.ndarray, what: str = "write") -> None:
    """Write ``codes`` to the elements at ``addresses``; where addresses repeat, the last write wins."""
    dtype = pointer.dtype
    first = _first_bits(pointer, addresses, what)
    if dtype.nbits % 8 == 0:
        width = dtype.nbits // 8
        data = np.ascontiguousarray(codes.astype(f"<u{width}")).reshape(-1, 1).view(np.uint8)
        pointer.storage[(first // 8)[:, None] + np.arange(width)] = data
        return
    positions = first[:, None] + np.arange(dtype.nbits)
    # Read-modify-write of whole bytes: unpack every touched byte to bits, set the written bits, repack.
    touched, which_byte = np.unique(positions >> 3, return_inverse=True)
    bits = np.unpackbits(pointer.storage[touched][:, None], axis=1, bitorder="little")
    values = (codes.astype(np.uint64)[:, None] >> np.arange(dtype.nbits, dtype=np.uint64)) & np.uint64(1)
    bits[which_byte.reshape(positions.shape), positions & 7] = values.astype(np.uint8)
    pointer.storage[touched] = np.packbits(bits, axis=1, bitorder="little")[:, 0]

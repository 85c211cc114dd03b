"""How the interpreter holds a register: one numpy array for all the threads of a batch, in the dtype's
*holder* type, and the conversions between holders, ``tilevm.ir.semantics`` carriers and raw bits.

A register of a dtype that numpy has (bool, int8..int64, uint8..uint64, float16, float32) is held
in that numpy type; any other dtype (bfloat16, float8 formats, sub-byte integers and floats) as its codes
(``code_storage_dtype``: the value's bits in the low bits of a uint). Either way the array holds the
register's *bits*, as the GPU does: moving a value (a load, a store, a gather, a bitcast, a shuffle) never
changes them, NaN payloads included; only arithmetic goes through values (``to_carrier``, the semantics,
``from_carrier``).

Shapes: a scalar register is ``[N]`` (one value per thread of the batch) or ``[]`` when every thread holds
the same value (constants, block indices of a one-block batch, values computed from those only); a vector
register of length n is ``[N, n]`` or ``[n]``. numpy's broadcasting mixes the two, so uniform values cost
one element until they meet a per-thread one.

>>> from tilevm.dtypes import bfloat16, float16, uint32
>>> halves = from_carrier(np.array([1.0, -2.0]), float16)
>>> hex(int(bitcast(halves, float16, 2, uint32, 1)))
'0xc0003c00'
>>> to_carrier(from_carrier(np.array([3.5]), bfloat16), bfloat16).tolist()
[3.5]
"""

from __future__ import annotations

import numpy as np

from tilevm.dtypes import (
    DType,
    bfloat16,
    boolean,
    code_storage_dtype,
    float16,
    float32,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier

__all__ = ["bitcast", "codes_of", "from_carrier", "from_codes", "holder", "to_carrier"]

_NATIVE: dict[DType, type[np.generic]] = {
    boolean: np.bool_,
    int8: np.int8,
    int16: np.int16,
    int32: np.int32,
    int64: np.int64,
    uint8: np.uint8,
    uint16: np.uint16,
    uint32: np.uint32,
    uint64: np.uint64,
    float16: np.float16,
    float32: np.float32,
}
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def holder(dtype: DType) -> type[np.generic]:
    """The numpy type of the arrays that hold registers of ``dtype``."""
    native = _NATIVE.get(dtype)
    return native if native is not None else code_storage_dtype(dtype)


def to_carrier(value: np.ndarray, dtype: DType) -> np.ndarray:
    """The semantics carrier (int64 / uint64, float64, bool) of a register of ``dtype``."""
    native = _NATIVE.get(dtype)
    if native is not None:
        if dtype.is_float:
            return value.astype(np.float64)
        if dtype.kind == "bool" or dtype == uint64:
            return value
        return value.astype(np.int64)
    if dtype == bfloat16:
        # A bfloat16 is the high half of the float32 with the same bits.
        return (value.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    return codes_to_carrier(value, dtype)


def from_carrier(carrier: np.ndarray, dtype: DType) -> np.ndarray:
    """The register of ``dtype`` holding a carrier already rounded to ``dtype`` (as the semantics return
    them). NaN becomes the codec's canonical NaN, as the reference executor stores it."""
    carrier = np.asarray(carrier)
    native = _NATIVE.get(dtype)
    if native is not None:
        if dtype.is_float:
            return _canonical_nan(carrier).astype(native)
        return carrier.astype(native)
    if dtype == bfloat16:
        # Exact: a bfloat16 value is a float32 whose low 16 bits are zero.
        wide = _canonical_nan(carrier).astype(np.float32).view(np.uint32)
        return (wide >> np.uint32(16)).astype(np.uint16)
    return carrier_to_codes(carrier, dtype)


def _canonical_nan(carrier: np.ndarray) -> np.ndarray:
    """numpy's NaN constant is the positive quiet NaN, which narrowing keeps as the canonical code; a NaN
    that arithmetic made negative (0 * inf on x86) would keep its sign bit."""
    nan = np.isnan(carrier)
    return np.where(nan, np.nan, carrier) if nan.any() else carrier


def codes_of(value: np.ndarray, dtype: DType) -> np.ndarray:
    """The register's bits as unsigned codes (uint8 for bool and sub-byte dtypes)."""
    if dtype.kind == "bool":
        return value.astype(np.uint8)
    native = _NATIVE.get(dtype)
    if native is None:
        return value
    return value.view(_UNSIGNED[dtype.nbits // 8])


def from_codes(codes: np.ndarray, dtype: DType) -> np.ndarray:
    """The register of ``dtype`` whose bits are ``codes`` (any unsigned type holding values below 2^n)."""
    if dtype.kind == "bool":
        return codes != 0
    storage = code_storage_dtype(dtype)
    typed = codes if codes.dtype == storage else codes.astype(storage)
    native = _NATIVE.get(dtype)
    return typed if native is None else typed.view(native)


def bitcast(
    value: np.ndarray, source: DType, source_length: int, target: DType, target_length: int
) -> np.ndarray:
    """The bits of a register of ``source_length`` elements of ``source`` read as ``target_length`` elements
    of ``target`` (a scalar when the length is 1); element 0 is in the lowest bits on both sides."""
    lead = value.shape if source_length == 1 else value.shape[:-1]
    if source.nbits % 8 == 0 and target.nbits % 8 == 0 and source.kind != "bool":
        # Little-endian memory order is element order: a numpy view of the holder's bytes is the bitcast.
        raw = np.ascontiguousarray(value).reshape(*lead, source_length)
        result = raw.view(holder(target) if target.kind != "bool" else np.uint8)
    else:
        result = from_codes(
            _regroup_bits(codes_of(value, source), lead, source, source_length, target), target
        )
    return result.reshape(lead) if target_length == 1 else result.reshape(*lead, target_length)


def _regroup_bits(
    codes: np.ndarray, lead: tuple[int, ...], source: DType, source_length: int, target: DType
) -> np.ndarray:
    """Codes of ``source`` (``lead`` + [source_length]) cut into codes of ``target``, LSB first."""
    shifts = np.arange(source.nbits, dtype=np.uint64)
    bits = (codes.reshape(*lead, source_length, 1).astype(np.uint64) >> shifts) & np.uint64(1)
    grouped = bits.reshape(
        *lead, source_length * source.nbits // target.nbits, target.nbits
    )  # no -1: lead may be 0
    weights = np.uint64(1) << np.arange(target.nbits, dtype=np.uint64)
    return (grouped * weights).sum(axis=-1, dtype=np.uint64)

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

import functools
from collections.abc import Callable

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

__all__ = [
    "bitcast",
    "carrier_reader",
    "codes_of",
    "from_carrier",
    "from_codes",
    "holder",
    "register_writer",
    "to_carrier",
]

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
    return carrier_reader(dtype)(value)


def from_carrier(carrier: np.ndarray, dtype: DType) -> np.ndarray:
    """The register of ``dtype`` holding a carrier already rounded to ``dtype`` (as the semantics return
    them). NaN becomes the codec's canonical NaN, as the reference executor stores it."""
    return register_writer(dtype)(carrier)


@functools.cache
def carrier_reader(dtype: DType) -> Callable[[np.ndarray], np.ndarray]:
    """``to_carrier`` for one dtype, chosen once (compiled instructions call it without looking it up)."""
    native = _NATIVE.get(dtype)
    if native is not None and not dtype.is_float:
        return _same if dtype.kind == "bool" or dtype == uint64 else _int64
    if native is not None:
        return _float64
    if dtype == bfloat16:
        return _bfloat16_carrier
    return functools.partial(_codes_to_carrier, dtype=dtype)


@functools.cache
def register_writer(dtype: DType) -> Callable[[np.ndarray], np.ndarray]:
    """``from_carrier`` for one dtype, chosen once."""
    native = _NATIVE.get(dtype)
    if native is not None and dtype.is_float:
        return lambda carrier: _canonical_nan(np.asarray(carrier)).astype(native)
    if native is not None:
        return lambda carrier: np.asarray(carrier).astype(native)
    if dtype == bfloat16:
        return _bfloat16_register
    return lambda carrier: carrier_to_codes(np.asarray(carrier), dtype)


def _same(value: np.ndarray) -> np.ndarray:
    return value


def _int64(value: np.ndarray) -> np.ndarray:
    return value.astype(np.int64)


def _float64(value: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # signalling NaNs quietly become NaN, as the codec decodes them
        return value.astype(np.float64)


def _bfloat16_carrier(value: np.ndarray) -> np.ndarray:
    # A bfloat16 is the high half of the float32 with the same bits.
    return _float64((value.astype(np.uint32) << np.uint32(16)).view(np.float32))


def _bfloat16_register(carrier: np.ndarray) -> np.ndarray:
    # Exact: a bfloat16 value is a float32 whose low 16 bits are zero.
    wide = _canonical_nan(np.asarray(carrier)).astype(np.float32).view(np.uint32)
    return (wide >> np.uint32(16)).astype(np.uint16)


def _codes_to_carrier(value: np.ndarray, dtype: DType) -> np.ndarray:
    return codes_to_carrier(value, dtype)


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
    if source.nbits % 8 == 0 and target.nbits % 8 == 0:
        # Little-endian memory order is element order: a numpy view of the holder's bytes is the bitcast.
        raw = np.ascontiguousarray(value).reshape(*lead, source_length)
        result = raw.view(holder(target))
    else:
        codes = codes_of(value, source).reshape(*lead, source_length)
        result = from_codes(_regroup_bits(codes, source.nbits, target.nbits), target)
    return result.reshape(lead) if target_length == 1 else result.reshape(*lead, target_length)


def _regroup_bits(codes: np.ndarray, source_bits: int, target_bits: int) -> np.ndarray:
    """Codes of ``source_bits`` bits (along the last axis) cut into codes of ``target_bits``, LSB first."""
    wide = codes.astype(np.uint64)
    lead = codes.shape[:-1]
    if source_bits % target_bits == 0:  # each code splits into whole target codes: int4 from bytes
        shifts = np.arange(source_bits // target_bits, dtype=np.uint64) * np.uint64(target_bits)
        mask = np.uint64((1 << target_bits) - 1)
        return ((wide[..., None] >> shifts) & mask).reshape(*lead, codes.shape[-1] * shifts.size)
    if target_bits % source_bits == 0:  # whole codes join into each target code: bytes from int4
        shifts = np.arange(target_bits // source_bits, dtype=np.uint64) * np.uint64(source_bits)
        grouped = wide.reshape(*lead, codes.shape[-1] // shifts.size, shifts.size)
        return np.bitwise_or.reduce(grouped << shifts, axis=-1)
    # Widths that do not divide (6-bit codes in bytes): through single bits.
    shifts = np.arange(source_bits, dtype=np.uint64)
    bits = (wide[..., None] >> shifts) & np.uint64(1)
    grouped = bits.reshape(*lead, codes.shape[-1] * source_bits // target_bits, target_bits)  # lead may be 0
    weights = np.uint64(1) << np.arange(target_bits, dtype=np.uint64)
    return (grouped * weights).sum(axis=-1, dtype=np.uint64)

"""``lop3``, ``prmt``, ``cvt_pack`` and ``cvt_unpack``: the register instructions that work on bits, as the
PTX ISA defines them (``lop3.b32``, ``prmt.b32{.mode}``,
``cvt.rn{.satfinite}.{f16x2,bf16x2,e4m3x2,e5m2x2}.f32``, ``cvt.rn.f16x2.{e4m3x2,e5m2x2}``).

- ``lop3``: bit i of the result is bit ``4 a_i + 2 b_i + c_i`` of the table: the OR of the table's minterms.
- ``prmt``: the bytes of ``b:a`` are numbered 0 to 7 (``a``'s low byte is 0). The default mode takes, for
  result byte k, the selector's nibble k: its low 3 bits pick the byte, its high bit replaces the byte by
  its sign bit repeated. The other modes take the selector's two low bits n and pick, for result byte k:
  ``f4e`` byte n + k, ``b4e`` byte (n - k) mod 8, ``rc8`` byte n, ``ecl`` byte max(k, n), ``ecr`` byte
  min(k, n), ``rc16`` byte 2 (n % 2) + k % 2 (the ISA's table of the modes, column by column).
- ``cvt_pack``: each float32 is rounded to the target by ``tilevm.ir.semantics``' cast; ``low`` goes to
  element 0, ``high`` to element 1. float8 results are ``.satfinite``: finite overflow and infinities give
  the largest finite value of their sign (NaN stays NaN).
- ``cvt_unpack``: each float8 value is a float16 value (``tilevm.ir.semantics``' cast, exact); element 0
  stays element 0.

>>> sorted(cls.__name__ for cls in BIT_OPS)
['ConvertPack', 'ConvertUnpack', 'Lop3', 'Prmt']
>>> hex(int(_permute(np.uint64(0x0706050483020100), np.uint64(0xB054), "default")))  # 0xB: byte 3's sign
'0xff000504'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from tilevm.dtypes import float16, float32
from tilevm.ir.semantics import cast
from tilevm.ir.thread import ConvertPack, ConvertUnpack, Lop3, Prmt
from tilevm.runtime.cpu.control import Step
from tilevm.runtime.cpu.registers import codes_of, from_carrier, from_codes, to_carrier
from tilevm.runtime.cpu.state import Batch

if TYPE_CHECKING:
    from tilevm.runtime.cpu.compiler import Compiler

__all__ = ["BIT_OPS"]


def _lop3(compiler: Compiler, instruction: Lop3) -> Step:
    slot = compiler.slot(instruction.output)
    operands = tuple(compiler.expression(value) for value in (instruction.a, instruction.b, instruction.c))
    dtype = instruction.a.type.dtype
    minterms = [index for index in range(8) if instruction.table >> index & 1]

    def run(batch: Batch) -> None:
        a, b, c = (codes_of(np.asarray(operand(batch)), dtype) for operand in operands)
        result = np.zeros(np.broadcast_shapes(a.shape, b.shape, c.shape), dtype=np.uint32)
        for index in minterms:
            result = result | ((a if index & 4 else ~a) & (b if index & 2 else ~b) & (c if index & 1 else ~c))
        batch.registers[slot] = from_codes(result, dtype)

    return run


#: for each mode, the source byte of result byte k given the selector's two low bits n
_MODES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "f4e": lambda n, k: n + k,
    "b4e": lambda n, k: (n - k) % 8,
    "rc8": lambda n, k: n,
    "ecl": lambda n, k: np.maximum(n, k),
    "ecr": lambda n, k: np.minimum(n, k),
    "rc16": lambda n, k: 2 * (n % 2) + k % 2,
}


def _permute(pair: np.ndarray, selector: np.ndarray, mode: str) -> np.ndarray:
    """The bytes of the 64-bit ``pair`` (b:a) that ``selector`` picks, as a uint32."""
    result = np.zeros(np.broadcast_shapes(pair.shape, selector.shape), dtype=np.uint64)
    for k in range(4):
        if mode == "default":
            control = (selector >> np.uint64(4 * k)) & np.uint64(0xF)
            source = control & np.uint64(7)
        else:
            control = None
            source = np.asarray(_MODES[mode](selector & np.uint64(3), k), dtype=np.uint64)
        byte = (pair >> (np.uint64(8) * source)) & np.uint64(0xFF)
        if control is not None:
            # The selector's high bit: the byte's sign bit repeated over all eight bits.
            signed = (control & np.uint64(8)) != 0
            byte = np.where(signed, np.where(byte >= 0x80, np.uint64(0xFF), np.uint64(0)), byte)
        result = result | (byte << np.uint64(8 * k))
    return result.astype(np.uint32)


def _prmt(compiler: Compiler, instruction: Prmt) -> Step:
    slot, mode = compiler.slot(instruction.output), instruction.mode
    a, b = compiler.expression(instruction.a), compiler.expression(instruction.b)
    selector = compiler.expression(instruction.selector)
    dtype, selector_dtype = instruction.a.type.dtype, instruction.selector.type.dtype

    def run(batch: Batch) -> None:
        low, high = (codes_of(np.asarray(value(batch)), dtype).astype(np.uint64) for value in (a, b))
        control = codes_of(np.asarray(selector(batch)), selector_dtype).astype(np.uint64)
        pair = (high << np.uint64(32)) | low
        batch.registers[slot] = from_codes(_permute(pair, control, mode), dtype)

    return run


def _convert_pack(compiler: Compiler, instruction: ConvertPack) -> Step:
    slot, dtype, rounding = compiler.slot(instruction.output), instruction.dtype, instruction.rounding
    high, low = compiler.expression(instruction.high), compiler.expression(instruction.low)
    saturate = dtype.nbits == 8

    def convert(value: np.ndarray) -> np.ndarray:
        carrier = to_carrier(np.asarray(value), float32)
        if saturate:
            carrier = np.clip(carrier, -dtype.max_value, dtype.max_value)  # .satfinite; NaN stays NaN
        return from_carrier(cast(carrier, float32, dtype, rounding), dtype)

    def run(batch: Batch) -> None:
        pair = np.broadcast_arrays(convert(low(batch)), convert(high(batch)))
        batch.registers[slot] = np.stack(pair, axis=-1)

    return run


def _convert_unpack(compiler: Compiler, instruction: ConvertUnpack) -> Step:
    slot, value = compiler.slot(instruction.output), compiler.expression(instruction.value)
    source = instruction.value.type.dtype

    def run(batch: Batch) -> None:
        carrier = to_carrier(np.asarray(value(batch)), source)
        batch.registers[slot] = from_carrier(cast(carrier, source, float16, "nearest"), float16)

    return run


BIT_OPS: dict[type, Callable[[Compiler, object], Step]] = {
    Lop3: _lop3,
    Prmt: _prmt,
    ConvertPack: _convert_pack,
    ConvertUnpack: _convert_unpack,
}

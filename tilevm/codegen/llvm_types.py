"""Thread IR types as LLVM IR types.

A register of a machine dtype is its LLVM type (``half``, ``bfloat``, ``float``, ``i32``; bool is ``i1``).
Storage-only dtypes (low-bit integers and floats, float8, e8m0) are plain bits to LLVM: an ``iN`` of their
width, which they only ever move through (loads, gathers, bitcasts), since lowering widens them before any
arithmetic. A vector is an LLVM vector; element 0 holds the lowest bits when it is bitcast, as in Thread IR.
Pointers are opaque, in address space 1 (global) or 3 (shared).

llvmlite's IR layer must be in opaque-pointer mode, which is chosen when llvmlite is first imported: the
package's ``__init__`` asks for it, and this module checks that it holds.
"""

from __future__ import annotations

import llvmlite
import numpy as np
from llvmlite import ir

from tilevm.dtypes import DType, bfloat16, encode, float16, float32
from tilevm.ir.types import AddressSpace, PointerType, ScalarType, Type, VectorType

__all__ = ["ADDRESS_SPACES", "BFloatType", "ir", "llvm_dtype", "llvm_type"]

if llvmlite.ir.types.ir_layer_typed_pointers_enabled:  # llvmlite was imported before this module
    raise ImportError(
        "llvmlite was imported with typed pointers; tilevm's code generation needs opaque pointers: set "
        "LLVMLITE_ENABLE_IR_LAYER_TYPED_POINTERS=0 before llvmlite is first imported"
    )

#: PTX's state spaces as NVPTX address spaces
ADDRESS_SPACES = {AddressSpace.GLOBAL: 1, AddressSpace.SHARED: 3}


class BFloatType(ir.types._BaseFloatType):
    """LLVM's ``bfloat``, which llvmlite's IR layer lacks; a constant prints as ``0xRXXXX``, its 16 bits
    (llvmlite's float types are singletons, made by ``_create_instance``)."""

    null = "0xR0000"
    intrinsic_name = "bf16"

    def __str__(self) -> str:
        return "bfloat"

    def format_constant(self, value: float) -> str:
        return f"0xR{bfloat16_bits(value):04X}"


BFloatType._create_instance()


def bfloat16_bits(value: float) -> int:
    """The bfloat16 nearest ``value`` (ties to even), as its 16 bits: the codec's, the one rounding rule."""
    return int(encode(np.array([value]), bfloat16)[0])


_FLOATS = {float16: ir.HalfType(), bfloat16: BFloatType(), float32: ir.FloatType()}


def llvm_dtype(dtype: DType) -> ir.Type:
    """The LLVM type of one element of ``dtype``: a float type for the machine floats, else ``iN``."""
    if dtype in _FLOATS:
        return _FLOATS[dtype]
    return ir.IntType(dtype.nbits)


def llvm_type(value_type: Type) -> ir.Type:
    """The LLVM type of a Thread IR register type: a scalar, a vector or a pointer."""
    if isinstance(value_type, ScalarType):
        return llvm_dtype(value_type.dtype)
    if isinstance(value_type, VectorType):
        return ir.VectorType(llvm_dtype(value_type.dtype), value_type.length)
    if isinstance(value_type, PointerType):
        return ir.PointerType(addrspace=ADDRESS_SPACES[value_type.space])
    raise TypeError(f"{value_type} is not a Thread IR register type")

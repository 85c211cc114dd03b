"""A kernel's launch arguments in the form ``cuLaunchKernel`` reads them: a ``void*[]`` whose entries point at
each parameter's bytes.

``ParameterBuffer`` is built once per loaded kernel: one 8-byte, 8-aligned slot per parameter in a single
ctypes buffer, and the ``void*[]`` of the slots' addresses. A launch only writes the values into the slots,
with one ``struct.pack_into`` for the usual case, so the driver call receives one integer (the array's
address) and no argument structure is built per launch. A buffer may take more values than the kernel has
parameters (``positions``): a launcher's values as its binder gives them, every tensor's sizes and strides,
of which the kernel takes all but the unit strides (compiled in); those go to slots that no pointer of the
array points at, so that no value is picked per launch. Values given once (``constants``: a partial
kernel's fixed arguments) have slots after those, written when the buffer is made: a launch packs the
other values only. Values that the fast format refuses (an unsigned value above the signed range, a float
that overflows, a wrong type, a wrong count) go through a slower path that checks each value and raises a
``LaunchError`` naming the parameter, or converts it exactly.

The kinds are those of ``CompiledPtx.parameters`` (``tilevm.codegen.kernel.parameter_kind``). Integer kinds
are signless, as PTX's ``.b32`` and LLVM's ``i32`` are: an ``i32`` takes any value in [-2**31, 2**32) and
stores its low 32 bits; a bool is 0 or 1.
Floats round to nearest, ties to even, in one step from the Python float (as ``tilevm.dtypes.codec``), and
beyond the format's range give inf. ``bf16`` and ``f16`` values are stored as their 16-bit codes.

>>> buffer = ParameterBuffer(("pointer", "i32", "f32"), kernel="k")
>>> buffer.fill((0x7F0000001000, -3, 0.5))
>>> bytes(buffer.storage[8:12]), bytes(buffer.storage[16:20])
(b'\\xfd\\xff\\xff\\xff', b'\\x00\\x00\\x00?')
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tilevm.dtypes import codec
from tilevm.errors import LaunchError

__all__ = ["PARAMETER_KINDS", "SLOT_BYTES", "ParameterBuffer", "ParameterKind"]

#: every parameter gets a slot this large and this aligned, enough for any kind (a pointer, an i64, an f64)
SLOT_BYTES = 8


@dataclass(frozen=True)
class ParameterKind:
    """How one PTX parameter kind is written: ``fast`` is the struct format of the usual case; ``checked``
    turns any value into the integer code that ``code_format`` stores, or raises ``ValueError``/``TypeError``
    saying what is wrong; ``pre`` (bf16 only) converts a value before the fast format packs it."""

    name: str
    fast: str
    code_format: str
    checked: Callable[[object], int]
    pre: Callable[[object], int] | None = None


def _integer(bits: int) -> Callable[[object], int]:
    low, high = -(1 << (bits - 1)), 1 << bits

    def checked(value: object) -> int:
        if isinstance(value, float) or not hasattr(value, "__index__"):
            raise TypeError(f"expected an integer, got {type(value).__name__} {value!r}")
        number = value.__index__()
        if not low <= number < high:
            raise ValueError(f"{number} does not fit in {bits} bits (expected a value in [{low}, {high}))")
        return number & (high - 1)

    return checked


def _pointer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise ValueError(f"expected a device address (an int in [0, 2**64)), got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _float(dtype: str) -> Callable[[object], int]:
    def checked(value: object) -> int:
        return int(codec.encode(_number(value), dtype))

    return checked


def _double(value: object) -> int:
    # a Python float is a float64 already: the code is its bits
    (bits,) = struct.unpack("<Q", struct.pack("<d", _number(value)))
    return bits


_bf16 = _float("bfloat16")

#: the parameter kinds tilevm's code generator emits, by name
PARAMETER_KINDS: dict[str, ParameterKind] = {
    kind.name: kind
    for kind in (
        ParameterKind("pointer", "Q", "Q", _pointer),
        ParameterKind("i8", "b", "B", _integer(8)),
        ParameterKind("i16", "h", "H", _integer(16)),
        ParameterKind("i32", "i", "I", _integer(32)),
        ParameterKind("i64", "q", "Q", _integer(64)),
        ParameterKind("f16", "e", "H", _float("float16")),
        ParameterKind("bf16", "H", "H", _bf16, pre=_bf16),
        ParameterKind("f32", "f", "I", _float("float32")),
        ParameterKind("f64", "d", "Q", _double),
    )
}


def _slot_format(codes: Sequence[str]) -> str:
    """A little-endian struct format putting each code at the start of its own 8-byte slot."""
    return "<" + "".join(f"{code}{SLOT_BYTES - struct.calcsize('<' + code)}x" for code in codes)


class ParameterBuffer:
    """The argument storage of one loaded kernel, reused by every launch. Not thread-safe: a launch fills it
    and the driver reads it during ``cuLaunchKernel``, so ``CudaLauncher`` holds a lock across both.

    ``address`` is what ``cuLaunchKernel`` takes as ``kernelParams``; ``storage`` holds the slots.
    """

    def __init__(
        self,
        kinds: Sequence[str],
        kernel: str,
        names: Sequence[str] | None = None,
        positions: Sequence[int] | None = None,
        width: int | None = None,
        constants: Sequence[object] = (),
    ) -> None:
        """``kinds`` and ``names``: the kernel's parameters; ``positions``: where each one's value is among
        the ``width`` values that ``fill`` takes (by default the parameters' values, in order), or, at
        ``width + i``, the value ``constants[i]``, given once (a partial kernel's fixed arguments: written
        now); the values at other positions are ints that the kernel does not take."""
        unknown = [kind for kind in kinds if kind not in PARAMETER_KINDS]
        if unknown:
            raise LaunchError(f"kernel '{kernel}' has parameters of unknown kinds {unknown}")
        self.kernel = kernel
        names = tuple(names) if names is not None else tuple(f"#{index}" for index in range(len(kinds)))
        if len(names) != len(kinds):
            raise LaunchError(f"kernel '{kernel}': {len(names)} names for {len(kinds)} parameters")
        positions = tuple(range(len(kinds))) if positions is None else tuple(positions)
        width = len(kinds) if width is None else width
        count = width + len(constants)
        if (
            len(positions) != len(kinds)
            or len(set(positions)) != len(kinds)
            or not set(range(width, count)) <= set(positions) <= set(range(count))
        ):
            raise LaunchError(
                f"kernel '{kernel}': positions {positions} for {len(kinds)} of {width} values "
                f"and {len(constants)} constants"
            )
        # every slot's kind and name: the parameters', and a 64-bit int (never read) for the others
        slot_kinds = [PARAMETER_KINDS["i64"]] * count
        slot_names = [f"(value #{index}, no parameter)" for index in range(count)]
        for kind, name, position in zip(kinds, names, positions):
            slot_kinds[position], slot_names[position] = PARAMETER_KINDS[kind], name
        self.kinds, self.names = tuple(slot_kinds[:width]), tuple(slot_names[:width])
        # c_uint64 elements make the storage 8-aligned; viewed as bytes through memoryview for pack_into
        self._slots = (ctypes.c_uint64 * max(count, 1))()
        self.storage = memoryview(self._slots).cast("B")
        self._pointers = (ctypes.c_void_p * max(len(kinds), 1))(
            *(ctypes.addressof(self._slots) + SLOT_BYTES * position for position in positions)
        )
        self.address = ctypes.addressof(self._pointers)
        self._pack = struct.Struct(_slot_format([kind.fast for kind in self.kinds])).pack_into
        self._pack_codes = struct.Struct(_slot_format([kind.code_format for kind in self.kinds])).pack_into
        self._converted = tuple((index, kind.pre) for index, kind in enumerate(self.kinds) if kind.pre)
        constant_kinds = slot_kinds[width:]
        codes = self._codes(constant_kinds, slot_names[width:], constants)
        pack_constants = struct.Struct(_slot_format([kind.code_format for kind in constant_kinds])).pack_into
        pack_constants(self.storage, SLOT_BYTES * width, *codes)

    def fill(self, values: Sequence[object]) -> None:
        """Write one launch's values (device addresses as ints, Python ints, floats, bools) into the slots."""
        try:
            if self._converted:
                converted = list(values)
                for index, convert in self._converted:
                    converted[index] = convert(converted[index])
                self._pack(self.storage, 0, *converted)
            else:
                self._pack(self.storage, 0, *values)
        except (struct.error, OverflowError, TypeError, ValueError, IndexError):
            self._fill_checked(values)

    def _fill_checked(self, values: Sequence[object]) -> None:
        if len(values) != len(self.kinds):
            raise LaunchError(
                f"kernel '{self.kernel}' takes {len(self.kinds)} parameter values, got {len(values)}"
            )
        self._pack_codes(self.storage, 0, *self._codes(self.kinds, self.names, values))

    def _codes(
        self, kinds: Sequence[ParameterKind], names: Sequence[str], values: Sequence[object]
    ) -> list[int]:
        """Each value's code as its kind stores it; a ``LaunchError`` naming the parameter of the first
        value that its kind refuses."""
        codes = []
        for kind, name, value in zip(kinds, names, values):
            try:
                codes.append(kind.checked(value))
            except (TypeError, ValueError) as error:
                raise LaunchError(
                    f"kernel '{self.kernel}', parameter {name} ({kind.name}): {error}"
                ) from None
        return codes

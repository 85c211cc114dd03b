"""The prebuilt parameter buffer: after ``fill``, each slot holds the bytes ``struct.pack`` gives the value in
the parameter's PTX type (torch's casts for bf16), and the ``void*[]`` points at the slots, read back through
ctypes; out-of-range and ill-typed values raise errors naming the parameter."""

from __future__ import annotations

import ctypes
import random
import struct

import numpy as np
import pytest
import torch

from tilevm.errors import LaunchError
from tilevm.runtime.cuda.parameters import PARAMETER_KINDS, SLOT_BYTES, ParameterBuffer

POISON = 0xA5


def bf16_bits(value: float) -> int:
    return (
        int(torch.tensor([value], dtype=torch.float32).to(torch.bfloat16).view(torch.int16).item()) & 0xFFFF
    )


def expected_bytes(kind: str, value) -> bytes:
    """The parameter's bytes in the PTX type, little-endian, by ``struct`` (and torch for bf16)."""
    if kind == "pointer":
        return struct.pack("<Q", value)
    if kind in ("i8", "i16", "i32", "i64"):
        bits = int(kind[1:])
        code = {8: "b", 16: "h", 32: "i", 64: "q"}[bits]
        return struct.pack("<" + (code if value < 0 else code.upper()), value)
    if kind == "bf16":
        return struct.pack("<H", bf16_bits(value))
    return struct.pack({"f16": "<e", "f32": "<f", "f64": "<d"}[kind], value)


def random_value(kind: str, rng: random.Random):
    if kind == "pointer":
        return rng.randrange(1 << 40, 1 << 48) & ~0xF
    if kind.startswith("i"):
        bits = int(kind[1:])
        # signless: both the signed range and the unsigned values above it
        return rng.randrange(-(1 << (bits - 1)), 1 << bits)
    if kind == "bf16":
        # float32 values, so that torch's float32 -> bfloat16 cast is the one rounding
        return float(np.float32(rng.uniform(-1e4, 1e4)))
    if kind == "f16":
        return rng.uniform(-6e4, 6e4)
    return rng.uniform(-1e30, 1e30) * rng.random() ** 20


def read_back(buffer: ParameterBuffer, count: int) -> list[bytes]:
    """Each parameter's slot, read through the pointer array as the driver does."""
    pointers = (ctypes.c_void_p * count).from_address(buffer.address)
    return [ctypes.string_at(pointers[index], SLOT_BYTES) for index in range(count)]


def poison(buffer: ParameterBuffer) -> None:
    buffer.storage[:] = bytes([POISON]) * len(buffer.storage)


@pytest.mark.parametrize("seed", range(6))
def test_filled_slots_hold_struct_packed_values(seed):
    rng = random.Random(seed)
    kinds = [rng.choice(sorted(PARAMETER_KINDS)) for _ in range(rng.randrange(1, 14))]
    buffer = ParameterBuffer(kinds, kernel="k")
    pointers = (ctypes.c_void_p * len(kinds)).from_address(buffer.address)
    storage_address = ctypes.addressof(ctypes.c_char.from_buffer(buffer.storage))
    assert [pointers[i] for i in range(len(kinds))] == [storage_address + 8 * i for i in range(len(kinds))]
    for _ in range(3):  # the same buffer, refilled: nothing of a previous launch may remain
        values = [random_value(kind, rng) for kind in kinds]
        poison(buffer)
        buffer.fill(values)
        for kind, value, slot in zip(kinds, values, read_back(buffer, len(kinds))):
            expected = expected_bytes(kind, value)
            assert slot[: len(expected)] == expected, (kind, value)


def test_four_pointers_and_four_ints():
    kinds = ("pointer",) * 4 + ("i32",) * 4
    buffer = ParameterBuffer(kinds, kernel="k")
    values = (0x7F12_3456_7800, 0x7F12_3456_9000, 0x7F00_0000_0010, 0x10, 4099, -1, 0, 2**31 - 1)
    poison(buffer)
    buffer.fill(values)
    assert b"".join(
        slot[:4] if kind == "i32" else slot for kind, slot in zip(kinds, read_back(buffer, 8))
    ) == (struct.pack("<4Q4i", *values))


def test_unsigned_values_above_the_signed_range_keep_their_bits():
    buffer = ParameterBuffer(("i32", "i8", "i16", "i64"), kernel="k")
    buffer.fill((3_000_000_000, 200, 65535, 2**64 - 2))
    slots = read_back(buffer, 4)
    assert [slot[:size] for slot, size in zip(slots, (4, 1, 2, 8))] == [
        struct.pack("<I", 3_000_000_000), struct.pack("<B", 200), struct.pack("<H", 65535),
        struct.pack("<Q", 2**64 - 2),
    ]  # fmt: skip


def test_floats_beyond_the_format_round_to_infinity():
    """As a float64 -> float32/float16 cast (numpy, torch) does, while struct refuses them."""
    buffer = ParameterBuffer(("f32", "f16", "bf16", "f32"), kernel="k")
    buffer.fill((1e39, -7e4, 1e39, 3))
    slots = read_back(buffer, 4)
    assert slots[0][:4] == np.float32(np.inf).tobytes()
    assert slots[1][:2] == np.float16(-np.inf).tobytes()
    assert slots[2][:2] == struct.pack("<H", bf16_bits(float("inf")))
    assert slots[3][:4] == struct.pack("<f", 3.0)


def test_nan_is_a_nan():
    buffer = ParameterBuffer(("f32", "f16", "bf16"), kernel="k")
    buffer.fill((float("nan"),) * 3)
    slots = read_back(buffer, 3)
    assert np.isnan(np.frombuffer(slots[0][:4], np.float32)[0])
    assert np.isnan(np.frombuffer(slots[1][:2], np.float16)[0])
    assert (
        torch.tensor([struct.unpack("<h", slots[2][:2])[0]], dtype=torch.int16).view(torch.bfloat16).isnan()
    )


@pytest.mark.parametrize(
    ("kinds", "values", "message"),
    [
        (("pointer", "i32"), (16, 2**32), r"parameter n \(i32\): 4294967296 does not fit in 32 bits"),
        (("pointer", "i32"), (16, -(2**31) - 1), r"parameter n \(i32\): -2147483649 does not fit in 32 bits"),
        (("pointer", "i32"), (-16, 1), r"parameter out \(pointer\): expected a device address"),
        (("pointer", "i32"), (16, 1.5), r"parameter n \(i32\): expected an integer, got float 1.5"),
        (("pointer", "f32"), (16, "x"), r"parameter n \(f32\): expected a number, got str"),
        (("pointer", "bf16"), (16, "x"), r"parameter n \(bf16\): expected a number, got str"),
        (("pointer", "i32"), (16,), r"kernel 'axpy' takes 2 parameter values, got 1"),
        (("pointer", "i32"), (16, 1, 2), r"kernel 'axpy' takes 2 parameter values, got 3"),
    ],
)
def test_bad_values_name_the_kernel_and_parameter(kinds, values, message):
    buffer = ParameterBuffer(kinds, kernel="axpy", names=("out", "n"))
    with pytest.raises(LaunchError, match=message) as raised:
        buffer.fill(values)
    assert "axpy" in str(raised.value)


def test_unnamed_parameters_are_named_by_position():
    buffer = ParameterBuffer(("i32", "i64"), kernel="k")
    with pytest.raises(LaunchError, match=r"parameter #1 \(i64\): 18446744073709551616 does not fit"):
        buffer.fill((1, 2**64))


def test_unknown_kind_and_wrong_names():
    with pytest.raises(LaunchError, match=r"kernel 'k' has parameters of unknown kinds \['f8'\]"):
        ParameterBuffer(("i32", "f8"), kernel="k")
    with pytest.raises(LaunchError, match="1 names for 2 parameters"):
        ParameterBuffer(("i32", "i32"), kernel="k", names=("a",))


def test_a_kernel_without_parameters():
    buffer = ParameterBuffer((), kernel="k")
    buffer.fill(())
    with pytest.raises(LaunchError, match="takes 0 parameter values, got 1"):
        buffer.fill((1,))


def test_a_buffer_of_a_binders_values_points_at_the_parameters_positions_only():
    rng = random.Random(7)
    kinds, positions, width = ("pointer", "i32", "f32", "bf16", "i32"), (0, 1, 3, 4, 6), 8
    buffer = ParameterBuffer(kinds, kernel="k", names=tuple("abcde"), positions=positions, width=width)
    for _ in range(2):
        values = [rng.randrange(1, 1000) for _ in range(width)]  # ints where no parameter reads
        for kind, position in zip(kinds, positions):
            values[position] = random_value(kind, rng)
        poison(buffer)
        buffer.fill(values)
        slots = read_back(buffer, len(kinds))
        for kind, position, slot in zip(kinds, positions, slots):
            expected = expected_bytes(kind, values[position])
            assert slot[: len(expected)] == expected, (kind, values[position])
    with pytest.raises(LaunchError, match=r"parameter c \(f32\): expected a number, got str"):
        buffer.fill([*values[:3], "x", *values[4:]])
    with pytest.raises(LaunchError, match="takes 8 parameter values, got 5"):
        buffer.fill(values[:5])


@pytest.mark.parametrize(("positions", "width"), [((0, 0), 3), ((0, 3), 3), ((0,), 3)])
def test_positions_must_be_distinct_values_among_the_width(positions, width):
    with pytest.raises(LaunchError, match=r"kernel 'k': positions"):
        ParameterBuffer(("i32", "i32"), kernel="k", positions=positions, width=width)

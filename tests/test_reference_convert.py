"""Casts and views of the reference executor, against explicit tables and the codec's reference unpack."""

import numpy as np
import torch
from reference_memory import from_memory, to_memory

from tilevm.dtypes import (
    DType,
    boolean,
    decode,
    encode,
    float4_e2m1,
    float8_e4m3,
    float16,
    float32,
    int3,
    int4,
    int8,
    pack,
    uint8,
    unpack,
)
from tilevm.ir import Cast, Const, GlobalView, LoadGlobal, ProgramBuilder, StoreGlobal, View
from tilevm.layout import replicated, spatial
from tilevm.runtime.reference import execute


def run_unary(values, source: DType, target: DType, make, shape=None, layout=None) -> np.ndarray:
    """Load ``values`` as a ``source`` tile, apply ``make(builder, tile)``, store the ``target`` result."""
    count = len(values)
    result_count = count if shape is None else int(np.prod(shape))
    builder = ProgramBuilder("convert", num_threads=32)
    src, dst = builder.pointer_param("src", source), builder.pointer_param("dst", target)
    view = builder.emit_output(GlobalView, "view", pointer=src, shape=(Const(count),), strides=(Const(1),))
    tile = builder.emit_output(
        LoadGlobal, "tile", layout=layout, tensor=view, offsets=(Const(0),), shape=(count,), dims=(0,)
    )
    result = make(builder, tile)
    out = builder.emit_output(
        GlobalView, "out", pointer=dst, shape=(Const(result_count),), strides=(Const(1),)
    )
    builder.emit(StoreGlobal(tensor=out, value=result, offsets=(Const(0),), dims=(0,)))
    out_memory = to_memory(np.full(result_count, 1), target)
    execute(builder.build(), [to_memory(values, source), out_memory], grid=(1,))
    return from_memory(out_memory, target, result_count)


def run_cast(values, source: DType, target: DType, rounding: str = "nearest") -> np.ndarray:
    def make(builder, tile):
        return builder.emit_output(Cast, "cast", operand=tile, dtype=target, rounding=rounding)

    return run_unary(values, source, target, make)


def test_float_to_int4_rounds_to_nearest_even_and_saturates():
    values = np.array([0.5, 1.5, 2.5, -2.5, 7.49, 7.5, 100.0, -8.6, -1000.0, np.nan, np.inf, -np.inf, 3.7])
    expected = [0, 2, 2, -2, 7, 7, 7, -8, -8, 0, 7, -8, 4]
    assert run_cast(values, float32, int4).tolist() == expected
    toward_zero = [0, 1, 2, -2, 7, 7, 7, -8, -8, 0, 7, -8, 3]
    assert run_cast(values, float32, int4, rounding="zero").tolist() == toward_zero


def test_integer_casts_wrap():
    rng = np.random.default_rng(41)
    values = rng.integers(-128, 128, 64)
    values[values == 0] = 5
    wrapped = [((int(v) + 4) % 8) - 4 for v in values]
    assert run_cast(values, int8, int3).tolist() == wrapped
    assert run_cast(values, int8, uint8).tolist() == [int(v) % 256 for v in values]


def test_float32_to_float4_e2m1_rounds_to_nearest_even_and_saturates():
    grid = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    # ties: 0.25 -> 0 (even), 0.75 -> 1 (even code 2), 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4
    values = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.01, 7.0, 1e9, -0.3, -2.9, 0.26])
    expected = [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0, 6.0, -0.5, -3.0, 0.5]
    result = run_cast(values, float32, float4_e2m1)
    assert result.tolist() == expected
    assert set(np.abs(result)) <= set(grid)


def test_float_to_float_saturates_only_without_inf():
    values = np.array([1000.0, -1000.0, 70000.0, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11])
    assert run_cast(values, float32, float8_e4m3).tolist()[:2] == [448.0, -448.0]
    as_half = run_cast(values, float32, float16)
    expected = torch.tensor(values, dtype=torch.float32).to(torch.float16).double().numpy()
    np.testing.assert_array_equal(as_half, expected)  # 70000 overflows to inf; ties go to even
    assert run_cast(values, float32, float16, rounding="zero")[2] == 65504.0


def test_casts_to_and_from_bool():
    values = np.array([0.0, -0.0, 2.5, np.nan, -1.0])
    assert run_cast(values, float32, boolean).tolist() == [0, 0, 1, 1, 1]
    assert run_cast(np.array([1, 0, 1]), boolean, int4).tolist() == [1, 0, 1]
    assert run_cast(np.array([1, 0]), boolean, float16).tolist() == [1.0, 0.0]


def run_view(values, source: DType, target: DType, shape, source_layout=None, target_layout=None):
    def make(builder, tile):
        return builder.emit_output(
            View, "view", layout=target_layout, operand=tile, dtype=target, shape=shape
        )

    return run_unary(values, source, target, make, shape=shape, layout=source_layout)


def nibbles(byte_values) -> list[int]:
    """The signed 4-bit values in bytes, low nibble first (written out independently of the codec)."""
    result = []
    for byte in byte_values:
        for nibble in (int(byte) & 0xF, int(byte) >> 4):
            result.append(nibble - 16 if nibble >= 8 else nibble)
    return result


def test_view_of_8_bytes_as_16_int4_without_layouts():
    rng = np.random.default_rng(51)
    data = rng.integers(1, 256, 8)
    result = run_view(data, uint8, int4, (16,))
    assert result.tolist() == nibbles(data)
    reference = decode(unpack(data.astype(np.uint8), int4, 16), int4)
    np.testing.assert_array_equal(result, reference)


def test_view_without_layouts_reads_row_major_bits_across_widths():
    rng = np.random.default_rng(52)
    data = rng.integers(-4, 4, 16)
    data[data == 0] = 3
    result = run_view(data, int3, uint8, (6,))
    expected = unpack(pack(encode(data, int3), int3), uint8, 6)
    np.testing.assert_array_equal(result, expected)


def test_view_with_layouts_reads_the_same_row_major_bits():
    rng = np.random.default_rng(53)
    data = rng.integers(1, 256, 256)
    # Thread t holds bytes 8t .. 8t + 7, then nibbles 16t .. 16t + 15: its own bits, and the result is the
    # row-major view, as without layouts.
    result = run_view(data, uint8, int4, (512,), spatial(32).local(8), spatial(32).local(16))
    assert result.tolist() == nibbles(data)
    replicated_result = run_view(
        data[:2], uint8, int4, (4,), replicated(32).local(2), replicated(32).local(4)
    )
    assert replicated_result.tolist() == nibbles(data[:2])

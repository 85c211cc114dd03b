"""The reference executor's global memory: masked windows, strides, low-bit packing, bounds, atomics."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tilevm.dtypes import (
    DType,
    decode,
    float4_e2m1,
    float6_e3m2,
    float16,
    float32,
    int3,
    int32,
    int_type,
    pack,
    uint4,
    uint5,
    unpack,
)
from tilevm.ir import AtomicGlobal, Cast, Const, GlobalView, LoadGlobal, ProgramBuilder, StoreGlobal
from tilevm.runtime.reference import ExecutionError, execute
from tilevm.runtime.reference.global_memory import read_codes, tensor_pointer, write_codes


def global_view(builder, pointer, shape, strides):
    return builder.emit_output(
        GlobalView,
        "view",
        pointer=pointer,
        shape=tuple(Const(s) for s in shape),
        strides=tuple(Const(s) for s in strides),
    )


def copy_program(dtype: DType, shape, strides, offsets, tile_shape, dims):
    """A one-block program that loads a window of ``src`` and stores it at the same window of ``dst``."""
    builder = ProgramBuilder("copy", num_threads=32)
    src, dst = builder.pointer_param("src", dtype), builder.pointer_param("dst", dtype)
    offsets = tuple(Const(offset) for offset in offsets)
    source = global_view(builder, src, shape, strides)
    target = global_view(builder, dst, shape, strides)
    tile = builder.emit_output(
        LoadGlobal, "tile", tensor=source, offsets=offsets, shape=tile_shape, dims=dims
    )
    builder.emit(StoreGlobal(tensor=target, value=tile, offsets=offsets, dims=dims))
    return builder.build()


def test_ragged_2d_window_writes_every_in_bounds_element_and_nothing_else():
    rng = np.random.default_rng(11)
    rows, cols = 13, 21
    source = torch.tensor(rng.uniform(1, 2, (rows, cols)), dtype=torch.float32)
    # The destination sits inside a larger buffer whose other bytes must stay untouched.
    buffer = torch.full((rows + 2, cols + 3), -7.0)
    destination = buffer[1 : rows + 1, 1 : cols + 1]
    destination.fill_(float("nan"))
    for row in range(0, rows, 8):
        for col in range(0, cols, 8):
            program = copy_window_with_strides(row, col, rows, cols, buffer.stride(0))
            execute(program, [source, destination], grid=(1,))
    assert torch.equal(destination, source)
    outside = buffer.clone()
    outside[1 : rows + 1, 1 : cols + 1] = -7.0
    assert torch.all(outside == -7.0)


def copy_window_with_strides(row, col, rows, cols, destination_row_stride):
    builder = ProgramBuilder("copy", num_threads=32)
    src, dst = builder.pointer_param("src", float32), builder.pointer_param("dst", float32)
    offsets = (Const(row), Const(col))
    source = global_view(builder, src, (rows, cols), (cols, 1))
    target = global_view(builder, dst, (rows, cols), (destination_row_stride, 1))
    tile = builder.emit_output(LoadGlobal, "tile", tensor=source, offsets=offsets, shape=(8, 8), dims=(0, 1))
    builder.emit(StoreGlobal(tensor=target, value=tile, offsets=offsets, dims=(0, 1)))
    return builder.build()


def test_masked_elements_read_other_and_fixed_dims_pick_a_row():
    rng = np.random.default_rng(12)
    source = torch.tensor(rng.integers(1, 1000, (5, 6)), dtype=torch.int32)
    builder = ProgramBuilder("row", num_threads=32)
    src, dst = builder.pointer_param("src", int32), builder.pointer_param("dst", int32)
    view = global_view(builder, src, (5, 6), (6, 1))
    out = global_view(builder, dst, (8,), (1,))
    tile = builder.emit_output(
        LoadGlobal,
        "tile",
        tensor=view,
        offsets=(Const(3), Const(-2)),
        shape=(8,),
        dims=(1,),
        other=Const(-99, int32),
    )
    builder.emit(StoreGlobal(tensor=out, value=tile, offsets=(Const(0),), dims=(0,)))
    destination = torch.zeros(8, dtype=torch.int32)
    execute(builder.build(), [source, destination], grid=(1,))
    expected = [-99, -99, *source[3].tolist()]
    assert destination.tolist() == expected


def test_transposed_strides_read_a_column_major_tensor():
    rng = np.random.default_rng(13)
    base = torch.tensor(rng.uniform(-3, 3, (7, 5)), dtype=torch.float16)
    transposed = base.t()  # shape (5, 7), strides (1, 5)
    destination = torch.full((5, 7), float("nan"), dtype=torch.float16)
    builder = ProgramBuilder("transpose", num_threads=32)
    src, dst = builder.pointer_param("src", float16), builder.pointer_param("dst", float16)
    source = global_view(builder, src, (5, 7), transposed.stride())
    target = global_view(builder, dst, (5, 7), (7, 1))
    zero = (Const(0), Const(0))
    tile = builder.emit_output(LoadGlobal, "tile", tensor=source, offsets=zero, shape=(8, 8), dims=(0, 1))
    builder.emit(StoreGlobal(tensor=target, value=tile, offsets=zero, dims=(0, 1)))
    execute(builder.build(), [transposed, destination], grid=(1,))
    assert torch.equal(destination, transposed)


@pytest.mark.parametrize(("dtype", "seed"), [(int3, 1), (uint5, 2), (float6_e3m2, 3), (float4_e2m1, 4)])
def test_low_bit_tensors_round_trip_through_packed_bytes(dtype, seed):
    rng = np.random.default_rng(seed)
    count, tile, start = 37, 16, 29  # the last window runs past the end
    codes = rng.integers(1, dtype.num_codes, count)
    packed = torch.from_numpy(pack(codes, dtype))
    sentinel = np.uint8(0xA5)
    output = torch.full((packed.numel() + 2,), int(sentinel), dtype=torch.uint8)
    output_tensor = output[1:-1]
    # Fill the destination's bits with codes that differ from the source (as poison).
    output_tensor.copy_(torch.from_numpy(pack((codes + 1) % dtype.num_codes, dtype)))
    for offset in range(0, count, tile):
        program = copy_program(dtype, (count,), (1,), (offset,), (tile,), (0,))
        execute(program, [packed, output_tensor], grid=(1,))
    assert output[0] == sentinel and output[-1] == sentinel
    copied = unpack(output_tensor.numpy(), dtype, count)
    np.testing.assert_array_equal(copied, codes)
    # and what a load reads is the reference decode of the packed codes
    loaded = load_values(packed, dtype, count, start, tile)
    expected = np.concatenate([decode(codes[start:], dtype), np.zeros(start + tile - count)])
    np.testing.assert_array_equal(loaded, expected)


def load_values(packed, dtype, count, start, tile):
    """The values a LoadGlobal of ``tile`` elements at ``start`` reads, stored as float32 for inspection."""
    builder = ProgramBuilder("load", num_threads=32)
    src, dst = builder.pointer_param("src", dtype), builder.pointer_param("dst", float32)
    source = global_view(builder, src, (count,), (1,))
    target = global_view(builder, dst, (tile,), (1,))
    loaded = builder.emit_output(
        LoadGlobal, "tile", tensor=source, offsets=(Const(start),), shape=(tile,), dims=(0,)
    )
    values = builder.emit_output(Cast, "values", operand=loaded, dtype=float32)
    builder.emit(StoreGlobal(tensor=target, value=values, offsets=(Const(0),), dims=(0,)))
    out = torch.full((tile,), float("nan"))
    execute(builder.build(), [packed, out], grid=(1,))
    return out.numpy()


def test_sub_byte_pointer_starts_at_the_tensors_first_byte():
    data = torch.tensor([0xFF, 0x21, 0x43], dtype=torch.uint8)[1:]  # starts at byte 1 of its storage
    assert load_values(data, uint4, 4, 0, 4).tolist() == [1.0, 2.0, 3.0, 4.0]


def test_access_outside_the_storage_raises():
    storage = torch.zeros(10, dtype=torch.float32)
    program = copy_program(float32, (12,), (1,), (0,), (16,), (0,))  # claims 12 elements; storage has 10
    with pytest.raises(ExecutionError, match="outside the tensor's storage"):
        execute(program, [storage, torch.zeros(12)], grid=(1,))


def test_atomic_add_applies_every_update_even_to_one_address():
    rng = np.random.default_rng(14)
    values = torch.tensor(rng.integers(1, 100, 8), dtype=torch.int32)
    builder = ProgramBuilder("atomic", num_threads=32)
    src, dst = builder.pointer_param("src", int32), builder.pointer_param("dst", int32)
    source = global_view(builder, src, (8,), (1,))
    # A view with stride 0: every element of the window is the same address.
    broadcast = global_view(builder, dst, (8,), (0,))
    elementwise = global_view(builder, dst, (3,), (1,))
    tile = builder.emit_output(LoadGlobal, "tile", tensor=source, offsets=(Const(0),), shape=(8,), dims=(0,))
    builder.emit(AtomicGlobal(op="add", tensor=broadcast, value=tile, offsets=(Const(0),), dims=(0,)))
    builder.emit(AtomicGlobal(op="max", tensor=elementwise, value=tile, offsets=(Const(-1),), dims=(0,)))
    target = torch.tensor([5, 50, 500], dtype=torch.int32)
    execute(builder.build(), [values, target], grid=(1,))
    expected_first = 5 + int(values.sum())
    expected = [max(expected_first, int(values[1])), max(50, int(values[2])), max(500, int(values[3]))]
    assert target.tolist() == expected


@settings(max_examples=60, deadline=None)
@given(
    nbits=st.integers(1, 8),
    count=st.integers(1, 40),
    skip=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_writes_in_any_order_pack_like_the_reference(nbits, count, skip, seed):
    """Element by element, in a random order, sub-byte writes build exactly the reference ``pack``."""
    dtype = int_type(nbits, signed=False)
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1 << nbits, count).astype(np.uint8)
    size = (count * nbits + 7) // 8
    storage = torch.tensor(rng.integers(0, 256, skip + size + 1), dtype=torch.uint8)
    before = storage.clone()
    pointer = tensor_pointer(storage[skip:], dtype, "data")
    order = rng.permutation(count)
    for chunk in np.array_split(order, 3):
        write_codes(pointer, chunk, codes[chunk])
    np.testing.assert_array_equal(read_codes(pointer, np.arange(count)), codes)
    written = unpack(storage[skip:].numpy(), dtype, count)
    np.testing.assert_array_equal(written, codes)
    # bits past the last element, and the bytes before the tensor, are unchanged
    assert torch.equal(storage[:skip], before[:skip]) and torch.equal(
        storage[skip + size :], before[skip + size :]
    )
    tail_bits = 8 * size - count * nbits
    mask = ((1 << tail_bits) - 1) << (8 - tail_bits)
    assert int(storage[skip + size - 1]) & mask == int(before[skip + size - 1]) & mask

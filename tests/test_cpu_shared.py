"""The SIMT interpreter's shared memory: stores, barriers and loads between threads, cp.async with its
per-thread groups and zero fill, each block with its own memory; checked against numpy."""

from __future__ import annotations

import numpy as np
import torch

from tests.cpu_programs import run


def test_threads_exchange_values_through_shared_memory_after_a_barrier():
    # Each block reverses its 96 values (a 6-byte row per thread: three int16), through shared memory.
    rng = np.random.default_rng(11)
    data = torch.from_numpy(rng.integers(-(2**15), 2**15, size=(4, 96, 3), dtype=np.int64).astype(np.int16))
    out = torch.full_like(data, 7)
    text = """kernel k(%x: ptr<int16>, %out: ptr<int16>) num_threads=96 shared_bytes=576 {
  %t: int32 = let(value=thread_index())
  %row: int32 = let(value=((block_index(0) * 96) + %t) * 6)
  for %j: int32 in range(0, 3, 1) {
    %v: int16 = load(pointer=pointer_add(%x, %row + (%j * 2)), width=2)
    store(pointer=shared_pointer<int16>((%t * 6) + (%j * 2)), value=%v)
  }
  barrier()
  for %j: int32 in range(0, 3, 1) {
    %w: int16 = load(pointer=shared_pointer<int16>(((95 - %t) * 6) + (%j * 2)), width=2)
    store(pointer=pointer_add(%out, %row + (%j * 2)), value=%w)
  }
}"""
    run(text, [data, out], grid=(4,))
    assert torch.equal(out, data.flip(1))


def test_cp_async_groups_land_when_waited_for_and_zero_fill_past_the_source_size():
    # Two stages of 16-byte copies per thread; the second stage copies only t % 17 bytes of each row.
    rng = np.random.default_rng(12)
    data = torch.from_numpy(rng.integers(0, 256, size=(3, 2, 32, 16), dtype=np.uint8))
    out = torch.zeros_like(data)
    text = """kernel k(%x: ptr<uint8>, %out: ptr<uint8>) num_threads=32 shared_bytes=1024 {
  %t: int32 = let(value=thread_index())
  %row: int32 = let(value=(block_index(0) * 1024) + (%t * 16))
  cp_async(destination=shared_pointer<uint8>(%t * 16), source=pointer_add(%x, %row), size=16, source_size=16)
  cp_async_commit_group()
  %partial: int32 = let(value=%t % 17)
  cp_async(destination=shared_pointer<uint8>(512 + (%t * 16)), source=pointer_add(%x, %row + 512), size=16, \
source_size=%partial, cache="global")
  cp_async_commit_group()
  cp_async_wait_group(pending=1)
  barrier()
  %first: vector<uint8, 16> = load(pointer=shared_pointer<uint8>((31 - %t) * 16), width=16)
  store(pointer=pointer_add(%out, (block_index(0) * 1024) + ((31 - %t) * 16)), value=%first)
  cp_async_wait_group(pending=0)
  barrier()
  %second: vector<uint8, 16> = load(pointer=shared_pointer<uint8>(512 + (%t * 16)), width=16)
  store(pointer=pointer_add(%out, %row + 512), value=%second)
}"""
    run(text, [data, out], grid=(3,))
    expected = data.numpy().copy()
    kept = np.arange(16)[None, :] < (np.arange(32) % 17)[:, None]
    expected[:, 1] = np.where(kept, expected[:, 1], 0)
    assert np.array_equal(out.numpy(), expected)


def test_predicated_off_accesses_touch_nothing_and_load_zero():
    # Threads past n would read and write outside both tensors: the predicate keeps them out.
    data = torch.arange(1, 21, dtype=torch.float32)
    out = torch.full((20,), float("nan"))
    text = """kernel k(%x: ptr<float32>, %out: ptr<float32>, %n: int32) num_threads=64 shared_bytes=256 {
  %t: int32 = let(value=thread_index())
  %inside: bool = let(value=%t < %n)
  %v: float32 = load(pointer=pointer_add(%x, %t * 4), width=4, predicate=%inside)
  store(pointer=shared_pointer<float32>(%t * 4), value=%v + 1.0, predicate=%inside)
  %outside: float32 = load(pointer=pointer_add(%x, %t * 4), width=4, predicate=false)
  barrier()
  %w: float32 = load(pointer=shared_pointer<float32>(%t * 4), width=4, predicate=%inside)
  store(pointer=pointer_add(%out, %t * 4), value=%w + %outside, predicate=%inside)
}"""
    run(text, [data, out, 20])
    assert torch.equal(out, data + 1)


def test_loops_whose_trip_count_differs_between_blocks_keep_each_blocks_barriers():
    # Block b runs b + 2 iterations; in each, every thread writes its slot, passes a barrier, reads its
    # neighbour's, and passes another barrier. Several blocks share a batch, so the loop diverges across
    # the batch while staying uniform within each block.
    out = torch.full((5, 64), -1, dtype=torch.int32)
    text = """kernel k(%out: ptr<int32>) num_threads=64 shared_bytes=256 {
  %t: int32 = let(value=thread_index())
  %sum: int32 = declare(init=0)
  for %i: int32 in range(0, block_index(0) + 2, 1) {
    store(pointer=shared_pointer<int32>(%t * 4), value=(%i * %t) + block_index(0))
    barrier()
    %next: int32 = load(pointer=shared_pointer<int32>(((%t + 1) % 64) * 4), width=4)
    set(variable=%sum, value=%sum + %next)
    barrier()
  }
  store(pointer=pointer_add(%out, ((block_index(0) * 64) + %t) * 4), value=%sum)
}"""
    run(text, [out], grid=(5,))
    neighbour = (np.arange(64) + 1) % 64
    expected = np.zeros((5, 64), dtype=np.int64)
    for b in range(5):
        for i in range(b + 2):
            expected[b] += i * neighbour + b
    assert np.array_equal(out.numpy(), expected)

"""Atomics in the SIMT interpreter: threads act in index order (blocks in grid order), each sees the value
the ones before it left; checked against the same updates applied one by one in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cpu_programs import run
from tilevm.runtime.reference.errors import ExecutionError

GLOBAL = """kernel k(%table: ptr<{dtype}>, %slots: ptr<int32>, %values: ptr<{dtype}>, %old: ptr<{dtype}>) \
num_threads=64 {{
  %t: int32 = let(value=(block_index(0) * 64) + thread_index())
  %slot: int32 = load(pointer=pointer_add(%slots, %t * 4), width=4)
  %v: {dtype} = load(pointer=pointer_add(%values, %t * {size}), width={size})
  %p: ptr<{dtype}> = let(value=pointer_add(%table, %slot * {size}))
  %o: {dtype} = atomic(op="{op}", pointer=%p, value=%v, predicate=(%t % 5) != 3)
  store(pointer=pointer_add(%old, %t * {size}), value=%o)
}}"""


@pytest.mark.parametrize(
    ("op", "dtype"),
    [("add", "int32"), ("add", "float32"), ("add", "float16"), ("max", "int64"), ("min", "float32"),
     ("and", "uint32"), ("or", "int32"), ("xor", "uint64"), ("exchange", "float32")],
)  # fmt: skip
def test_global_atomics_apply_in_thread_order(op, dtype):
    rng = np.random.default_rng(len(op) * 31 + len(dtype))
    numpy_type = np.dtype(dtype)
    threads = 3 * 64
    slots = rng.integers(0, 7, size=threads).astype(np.int32)  # many threads per slot
    if numpy_type.kind == "f":
        values = rng.standard_normal(threads).astype(numpy_type)
        table = rng.standard_normal(7).astype(numpy_type)
    else:
        info = np.iinfo(numpy_type)
        values = rng.integers(info.min, info.max, size=threads, dtype=numpy_type, endpoint=True)
        table = rng.integers(info.min, info.max, size=7, dtype=numpy_type, endpoint=True)
    expected_table, expected_old = table.copy(), np.zeros(threads, dtype=numpy_type)
    update = {
        "add": lambda old, v: old + v, "max": max, "min": min, "and": lambda old, v: old & v,
        "or": lambda old, v: old | v, "xor": lambda old, v: old ^ v, "exchange": lambda old, v: v,
    }[op]  # fmt: skip
    with np.errstate(over="ignore"):
        for thread in range(threads):
            if thread % 5 != 3:
                expected_old[thread] = expected_table[slots[thread]]
                expected_table[slots[thread]] = update(expected_table[slots[thread]], values[thread])
    tensors = [torch.from_numpy(array.copy()) for array in (table, slots, values)]
    old = torch.from_numpy(np.full(threads, 7, dtype=numpy_type))
    text = GLOBAL.format(dtype=dtype, op=op, size=numpy_type.itemsize)
    run(text, [*tensors, old], grid=(3,))
    assert np.array_equal(tensors[0].numpy(), expected_table)
    assert np.array_equal(old.numpy(), expected_old)


def test_shared_memory_histogram_with_atomic_adds():
    rng = np.random.default_rng(44)
    keys = rng.integers(0, 16, size=(2, 128)).astype(np.int32)
    out = torch.full((2, 16), -1, dtype=torch.int32)
    text = """kernel k(%keys: ptr<int32>, %out: ptr<int32>) num_threads=128 shared_bytes=64 {
  %t: int32 = let(value=thread_index())
  if %t < 16 {
    store(pointer=shared_pointer<int32>(%t * 4), value=0)
  }
  barrier()
  %key: int32 = load(pointer=pointer_add(%keys, ((block_index(0) * 128) + %t) * 4), width=4)
  %o: int32 = atomic(op="add", pointer=shared_pointer<int32>(%key * 4), value=1)
  barrier()
  if %t < 16 {
    %count: int32 = load(pointer=shared_pointer<int32>(%t * 4), width=4)
    store(pointer=pointer_add(%out, ((block_index(0) * 16) + %t) * 4), value=%count)
  }
}"""
    run(text, [torch.from_numpy(keys), out], grid=(2,))
    assert np.array_equal(out.numpy(), np.stack([np.bincount(row, minlength=16) for row in keys]))


PAST_THE_END = """kernel k(%bytes: ptr<uint8>, %mask: uint32) num_threads=32 {
  %word: ptr<uint32> = let(value=pointer_cast<uint32>(%bytes))
  %o: uint32 = atomic(op="or", pointer=pointer_add(%word, 4), value=%mask, predicate=thread_index() == 0)
}"""


def test_a_bitwise_atomic_may_span_the_storage_end_when_it_leaves_the_bytes_there_alone():
    """A 6-byte tensor: the word at byte 4 holds bytes 4 and 5 and two bytes past the end, which an ``or``
    of zeros there leaves as they are (on the GPU the word lies inside the allocation)."""
    data = torch.tensor([1, 2, 3, 4, 0x10, 0x20], dtype=torch.uint8)
    run(PAST_THE_END, [data, 0x0000_0F0F])
    assert data.tolist() == [1, 2, 3, 4, 0x1F, 0x2F]
    with pytest.raises(ExecutionError, match="changes bytes past the end of the tensor's storage"):
        run(PAST_THE_END, [data, 0x0100_0000])

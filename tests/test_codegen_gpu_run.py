"""On a GPU, kernels of the control and memory instructions compute what the SIMT interpreter computes, byte
for byte: loads and stores of every width (sub-byte vectors among them) in global and shared memory,
predicated ones (zero where off), atomics (integer, float32 and float16 sums that are exact in any order,
max, min, xor, or, exchange), loops counting up and down with unroll hints, ``while`` and ``if``,
``cp.async`` with zero fill, and ``ldmatrix`` with and without transposition.

Each kernel runs twice on the same seeded random bytes: in the interpreter (``tilevm.runtime.cpu``, the
reference) and on the GPU through ``tilevm.runtime.cuda`` (its PTX from ``compile_to_ptx`` for the device's
target); every output is poisoned first, so an element left unwritten differs. The kernels write only what
their threads own or what any order of atomics leaves the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tilevm.codegen import compile_to_ptx
from tilevm.codegen.targets import TARGETS
from tilevm.ir import parse
from tilevm.ir.thread import THREAD_IR
from tilevm.runtime.cpu import execute

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ACCESSES = """kernel accesses(%x: ptr<uint8> divisibility=16, %y: ptr<uint8> divisibility=16, %p: bool) \
num_threads=64 shared_bytes=1024 {
  %t: int32 = let(value=thread_index())
  %base: int32 = let(value=((block_index(0) * 64) + %t) * 48)
  %odd: bool = let(value=(%t % 2) == 1)
  %b1: uint8 = load(pointer=pointer_add(%x, %base), width=1)
  %b2: vector<uint8, 2> = load(pointer=pointer_add(%x, %base + 2), width=2)
  %b4: vector<int4, 8> = load(pointer=pointer_cast<int4>(pointer_add(%x, %base + 4)), width=4)
  %b8: vector<bfloat16, 4> = load(pointer=pointer_cast<bfloat16>(pointer_add(%x, %base + 8)), width=8)
  %b16: vector<float16, 8> = load(pointer=pointer_cast<float16>(pointer_add(%x, %base + 16)), width=16)
  %maybe: vector<uint8, 16> = load(pointer=pointer_add(%x, %base + 32), width=16, predicate=%odd & %p)
  store(pointer=shared_pointer<float16>(%t * 16), value=%b16)
  barrier()
  %neighbour: vector<float16, 8> = load(pointer=shared_pointer<float16>(((%t + 1) % 64) * 16), width=16)
  store(pointer=pointer_add(%y, %base), value=%b1)
  store(pointer=pointer_add(%y, %base + 2), value=%b2)
  store(pointer=pointer_cast<int4>(pointer_add(%y, %base + 4)), value=%b4)
  store(pointer=pointer_cast<bfloat16>(pointer_add(%y, %base + 8)), value=%b8, predicate=%odd)
  store(pointer=pointer_cast<float16>(pointer_add(%y, %base + 16)), value=%neighbour)
  store(pointer=pointer_add(%y, %base + 32), value=%maybe)
}"""

ATOMICS = """kernel atomics(%counters: ptr<int32> divisibility=16, %sums: ptr<float32> divisibility=16, \
%halves: ptr<float16> divisibility=16, %wide: ptr<uint64> divisibility=16, \
%slots: ptr<int32> divisibility=16, %olds: ptr<int32> divisibility=16) num_threads=128 shared_bytes=64 {
  %t: int32 = let(value=(block_index(0) * 128) + thread_index())
  if thread_index() < 8 {
    store(pointer=shared_pointer<int32>(thread_index() * 4), value=thread_index())
  }
  barrier()
  %a: int32 = atomic(op="add", pointer=%counters, value=%t)
  %b: int32 = atomic(op="max", pointer=pointer_add(%counters, 4), value=(%t * 7) % 100)
  %c: int32 = atomic(op="min", pointer=pointer_add(%counters, 8), value=%t - 50)
  %d: int32 = atomic(op="xor", pointer=pointer_add(%counters, 12), value=%t * 2654435)
  %e: int32 = atomic(op="or", pointer=pointer_add(%counters, 16), value=%t * 4096)
  %f: float32 = atomic(op="add", pointer=%sums, value=cast<float32>(%t % 8))
  %g: float16 = atomic(op="add", pointer=pointer_add(%halves, (%t % 4) * 2), value=1.0:float16)
  %h: uint64 = atomic(op="max", pointer=%wide, value=cast<uint64>(%t) * 1099511627776:uint64)
  %s: int32 = atomic(op="add", pointer=shared_pointer<int32>((%t % 8) * 4), value=3, predicate=(%t % 3) != 0)
  %x: int32 = atomic(op="exchange", pointer=pointer_add(%slots, %t * 4), value=%t, predicate=(%t % 3) == 0)
  barrier()
  %shared: int32 = load(pointer=shared_pointer<int32>((%t % 8) * 4), width=4)
  store(pointer=pointer_add(%olds, %t * 4), value=%x + (%shared * 1000))
}"""

LOOPS = """kernel loops(%y: ptr<int32> divisibility=16, %n: int32, %m: int64) num_threads=32 {
  %t: int32 = let(value=thread_index())
  %total: int32 = declare(init=%t)
  for %i: int32 in range(%t, %n, 3) unroll=4 {
    set(variable=%total, value=(%total * 3) + %i)
  }
  for %j: int64 in range(%m, cast<int64>(%t), -2:int64) {
    set(variable=%total, value=%total ^ cast<int32>(%j))
  }
  for %k: int32 in range(0, %t, (%n % 5) + 1) unroll=2 {
    set(variable=%total, value=%total - %k)
  }
  %count: int32 = declare(init=%t)
  while %count > 0 {
    if (%count % 2) == 0 {
      set(variable=%total, value=%total + %count)
    } else {
      set(variable=%total, value=%total - 1)
    }
    set(variable=%count, value=%count - 3)
  }
  store(pointer=pointer_add(%y, %t * 4), value=%total)
}"""

COPIES = """kernel copies(%x: ptr<uint8> divisibility=16, %y: ptr<uint8> divisibility=16) num_threads=32 \
shared_bytes=1024 {
  %t: int32 = let(value=thread_index())
  cp_async(destination=shared_pointer<uint8>(%t * 16), source=pointer_add(%x, %t * 16), size=16, \
source_size=%t % 17, cache="global")
  cp_async(destination=shared_pointer<uint8>(512 + (%t * 8)), source=pointer_add(%x, 512 + (%t * 8)), \
size=8, source_size=%t % 9)
  cp_async(destination=shared_pointer<uint8>(768 + (%t * 4)), source=pointer_add(%x, 768 + (%t * 4)), \
size=4, source_size=4)
  cp_async_commit_group()
  cp_async_wait_group(pending=0)
  barrier()
  %a: vector<uint8, 16> = load(pointer=shared_pointer<uint8>(((%t + 5) % 32) * 16), width=16)
  %b: vector<uint8, 8> = load(pointer=shared_pointer<uint8>(512 + (((%t + 3) % 32) * 8)), width=8)
  %c: vector<uint8, 4> = load(pointer=shared_pointer<uint8>(768 + (((%t + 1) % 32) * 4)), width=4)
  store(pointer=pointer_add(%y, %t * 16), value=%a)
  store(pointer=pointer_add(%y, 512 + (%t * 8)), value=%b)
  store(pointer=pointer_add(%y, 768 + (%t * 4)), value=%c)
}"""

FRAGMENTS = """kernel fragments(%x: ptr<uint16> divisibility=16, %y: ptr<uint32> divisibility=16) \
num_threads=32 shared_bytes=512 {
  %t: int32 = let(value=thread_index())
  %row: vector<uint16, 8> = load(pointer=pointer_add(%x, %t * 16), width=16)
  store(pointer=shared_pointer<uint16>(%t * 16), value=%row)
  barrier()
  %a: vector<uint16, 2>, %b: vector<uint16, 2>, %c: vector<uint16, 2>, %d: vector<uint16, 2> = \
ldmatrix(pointer=shared_pointer<uint16>(%t * 16), count=4)
  %e: vector<uint16, 2>, %f: vector<uint16, 2> = ldmatrix(\
pointer=shared_pointer<uint16>(((%t * 7) % 32) * 16), count=2, transpose=true)
  %g: vector<uint16, 2> = ldmatrix(pointer=shared_pointer<uint16>(((%t + 9) % 32) * 16), count=1)
  store(pointer=pointer_add(%y, %t * 16), value=gather([bitcast<uint32, 1>(%a), bitcast<uint32, 1>(%b), \
bitcast<uint32, 1>(%c), bitcast<uint32, 1>(%d)], [0, 1, 2, 3]))
  store(pointer=pointer_add(%y, 512 + (%t * 8)), value=gather([bitcast<uint32, 1>(%e), \
bitcast<uint32, 1>(%f)], [0, 1]))
  store(pointer=pointer_add(%y, 768 + (%t * 4)), value=bitcast<uint32, 1>(%g))
}"""


def _bytes(rng: np.random.Generator, count: int) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, count, dtype=np.uint8))


def _poison(count: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    return torch.full((count,), 0xA5, dtype=torch.uint8).view(dtype)


#: each kernel: its text, its grid, and its arguments from a seeded generator
CASES = {
    "accesses_on": (ACCESSES, (3,), lambda rng: [_bytes(rng, 3 * 64 * 48), _poison(3 * 64 * 48), True]),
    "accesses_off": (ACCESSES, (3,), lambda rng: [_bytes(rng, 3 * 64 * 48), _poison(3 * 64 * 48), False]),
    "atomics": (
        ATOMICS,
        (2,),
        lambda rng: [
            torch.from_numpy(rng.integers(-1000, 1000, 8, dtype=np.int32)),
            torch.from_numpy(rng.integers(-64, 64, 4).astype(np.float32)),
            torch.from_numpy(rng.integers(-64, 64, 4).astype(np.float16)),
            torch.from_numpy(rng.integers(0, 1 << 40, 2, dtype=np.int64)).view(torch.uint64),
            torch.from_numpy(rng.integers(-(1 << 31), 1 << 31, 256, dtype=np.int32)),
            _poison(256 * 4, torch.int32),
        ],
    ),
    "loops": (LOOPS, (1,), lambda rng: [_poison(32 * 4, torch.int32), int(rng.integers(20, 60)), 41]),
    "copies": (COPIES, (1,), lambda rng: [_bytes(rng, 896), _poison(896)]),
    "fragments": (
        FRAGMENTS,
        (1,),
        lambda rng: [_bytes(rng, 512).view(torch.uint16), _poison(896, torch.uint32)],
    ),
}


def _run_on_gpu(program: object, arguments: list[object], grid: tuple[int, ...]) -> None:
    from tilevm.runtime.cuda import CudaLauncher, properties

    index = torch.cuda.current_device()
    device = properties(index)
    compiled = compile_to_ptx(program, TARGETS[device.target].with_ptx_limit(device.max_ptx_version))
    launcher = CudaLauncher(compiled, index)
    values = [value.data_ptr() if isinstance(value, torch.Tensor) else value for value in arguments]
    launcher.launch((*grid, *(1,) * (3 - len(grid))), values, torch.cuda.current_stream(index).cuda_stream)
    torch.cuda.synchronize(index)


@pytest.mark.parametrize("name", CASES)
def test_the_gpu_computes_what_the_interpreter_computes(name: str) -> None:
    text, grid, make_arguments = CASES[name]
    program = parse(text, THREAD_IR)
    arguments = make_arguments(np.random.default_rng(list(CASES).index(name) + 17))
    expected = [value.clone() if isinstance(value, torch.Tensor) else value for value in arguments]
    execute(program, expected, grid)
    on_gpu = [value.cuda() if isinstance(value, torch.Tensor) else value for value in arguments]
    _run_on_gpu(program, on_gpu, grid)
    for position, (reference, actual) in enumerate(zip(expected, on_gpu, strict=True)):
        if isinstance(reference, torch.Tensor):
            same = torch.equal(reference.view(torch.uint8), actual.cpu().view(torch.uint8))
            assert same, f"{name}: argument {position} differs\ninterpreter {reference}\nGPU {actual.cpu()}"

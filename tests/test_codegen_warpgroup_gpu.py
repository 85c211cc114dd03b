"""wgmma on an H100 or H200 (target sm_90a): the programs of ``wgmma_programs``, compiled by
``tilevm.codegen`` and launched through ``tilevm.runtime.cuda``, give numpy's A @ B + C in the accumulator
order transcribed from the PTX ISA, as the SIMT interpreter does, for every swizzle mode, both dtypes, n from
8 to 256, two warpgroups, and A in registers (in the ISA's register fragment). The outputs are poisoned with
NaN first, so a register left unwritten shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.wgmma_programs import Case, kernel_arguments, make_data, program_text
from tilevm.codegen import compile_to_ptx
from tilevm.codegen.targets import TARGETS
from tilevm.dtypes import bfloat16, float16
from tilevm.ir import parse
from tilevm.ir.thread import THREAD_IR
from tilevm.runtime.cpu import execute

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CASES = [
    Case(n=8, dtype=float16, swizzle=128, steps=4),
    Case(n=24, dtype=bfloat16, swizzle=64, steps=4),
    Case(n=128, dtype=float16, swizzle=32, steps=2),
    Case(n=256, dtype=bfloat16, swizzle=0, steps=2),
    Case(n=24, dtype=float16, swizzle=0, steps=3, k_outer=True),
    Case(n=256, dtype=float16, swizzle=128, steps=4),
    Case(n=16, dtype=bfloat16, swizzle=128, steps=4, warpgroups=2),
    # A in registers, B in shared memory
    Case(n=8, dtype=float16, swizzle=128, steps=4, a_in_registers=True),
    Case(n=64, dtype=bfloat16, swizzle=64, steps=2, a_in_registers=True),
    Case(n=256, dtype=float16, swizzle=0, steps=2, a_in_registers=True),
    Case(n=256, dtype=bfloat16, swizzle=128, steps=3, warpgroups=2, a_in_registers=True),
    Case(n=64, dtype=float16, swizzle=32, steps=3, warpgroups=2, a_in_registers=True),
]


def _inputs(case: Case, seed: int) -> tuple[list[torch.Tensor], np.ndarray]:
    data = make_data(case, np.random.default_rng(seed))
    d = torch.full((case.num_threads * case.n // 2,), float("nan"))
    base = torch.full((1,), -1, dtype=torch.int32)
    return kernel_arguments(case, data, d, base), data.expected(case.n)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_wgmma_on_the_gpu_gives_a_times_b_plus_c(case: Case) -> None:
    from tilevm.runtime.cuda import CudaLauncher, properties

    index = torch.cuda.current_device()
    device = properties(index)
    if device.target != "sm_90a":
        pytest.skip(f"wgmma needs sm_90a (compute capability 9.0); device {index} is {device.target}")
    program = parse(program_text(case), THREAD_IR)
    arguments, expected = _inputs(case, seed=CASES.index(case) + 11)
    interpreted = [tensor.clone() for tensor in arguments]
    execute(program, interpreted, (1,))
    compiled = compile_to_ptx(program, TARGETS["sm_90a"].with_ptx_limit(device.max_ptx_version))
    on_gpu = [tensor.cuda() for tensor in arguments]
    launcher = CudaLauncher(compiled, index)
    stream = torch.cuda.current_stream(index).cuda_stream
    launcher.launch((1, 1, 1), [tensor.data_ptr() for tensor in on_gpu], stream)
    torch.cuda.synchronize(index)
    base = int(on_gpu[3].cpu()[0])
    assert base % 1024 == 0, f"the dynamic shared memory starts at shared address {base}, not 1024-aligned"
    actual = on_gpu[2].cpu().numpy().reshape(case.num_threads, case.n // 2)
    assert np.array_equal(actual, expected), f"{np.argwhere(actual != expected)[:8]} (shared base {base})"
    assert np.array_equal(interpreted[2].numpy().reshape(actual.shape), expected)

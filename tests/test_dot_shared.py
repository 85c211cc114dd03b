"""Dots read from shared memory (``tv.dot`` of two shared tiles, Tile IR's ``dot_shared``): the results of
the SIMT interpreter (the lowered program) and of the block-level reference executor against torch's
float64 product, for float16 and bfloat16, over warpgroups spread along the rows, the columns or both,
with a k loop whose last window is ragged (the copies read zeros past the end); the shared placement the
tensor cores need; and the errors. Inputs are small integers, so that every partial sum is exact."""

import dataclasses

import pytest
import torch
from lowering import assert_same_bytes, run_both

import tilevm as tv
from tilevm.errors import CompilationError
from tilevm.ir import IRTypeError, SharedDot, parse, print_program
from tilevm.ir.thread import THREAD_IR
from tilevm.layout import LayoutError, Swizzle
from tilevm.layout.warpgroup import operand_form, warpgroup_accumulator, warpgroup_operand_a
from tilevm.passes import CompileOptions, lower_to_threads, run_pipeline
from tilevm.passes.pipeline import TILE_PASSES
from tilevm.runtime.reference.errors import ExecutionError


def shared_dot_kernel(num_warps: int, a_in_registers: bool = False):
    """``y = x @ w.T``, both operands K-major in shared memory, k in windows of BK; with
    ``a_in_registers``, x's window is loaded into registers instead (the A operand in registers:
    ``wgmma``'s register fragment on sm_90a, ``mma.sync`` elsewhere)."""

    @tv.kernel(num_warps=num_warps)
    def shared_dot(
        x: tv.Tensor, w: tv.Tensor, y: tv.Tensor, M: tv.constexpr, N: tv.constexpr, BK: tv.constexpr
    ):
        xs = tv.shared_tensor(x.dtype, [M, BK])
        ws = tv.shared_tensor(x.dtype, [N, BK])
        acc = tv.register_tensor(tv.float32, [M, N], init=0.0)
        for k0 in range(0, x.shape[1], BK):
            if not a_in_registers:
                tv.copy_async(xs, x, offsets=[0, k0])
            tv.copy_async(ws, w, offsets=[0, k0])
            tv.copy_async_commit()
            a = tv.load_global(x, offsets=[0, k0], shape=[M, BK]) if a_in_registers else xs
            tv.copy_async_wait(0)
            tv.sync()
            acc = tv.dot(a, tv.permute(ws, [1, 0]), acc)
            tv.sync()
        tv.store_global(y, acc, offsets=[0, 0])

    return shared_dot


def pipelined_dot_kernel(num_warps: int, a_in_registers: bool = False):
    """``y = x @ w.T`` by dots left running (``wait=False``) on two buffers: the copies of window j + 1 go
    on while the tensor cores multiply window j, and ``dot_wait(0)`` before each barrier frees the
    buffer the next copies fill. With ``a_in_registers``, x's next window loads into registers while the
    tensor cores multiply this one, whose A registers must stay untouched until its wait."""

    @tv.kernel(num_warps=num_warps)
    def pipelined_dot(
        x: tv.Tensor, w: tv.Tensor, y: tv.Tensor, M: tv.constexpr, N: tv.constexpr, BK: tv.constexpr
    ):
        xs = tv.shared_tensor(x.dtype, [2, M, BK])
        ws = tv.shared_tensor(x.dtype, [2, N, BK])
        acc = tv.register_tensor(tv.float32, [M, N], init=0.0)
        windows = tv.cdiv(x.shape[1], BK)
        if not a_in_registers:
            tv.copy_async(tv.slice_shared(xs, [0, 0, 0], [M, BK]), x, offsets=[0, 0])
        tv.copy_async(tv.slice_shared(ws, [0, 0, 0], [N, BK]), w, offsets=[0, 0])
        tv.copy_async_commit()
        if a_in_registers:
            a = tv.load_global(x, offsets=[0, 0], shape=[M, BK])
        for j in range(windows):
            tv.copy_async_wait(0)
            tv.dot_wait(0)
            tv.sync()
            if j + 1 < windows:
                ahead = (j + 1) % 2
                if not a_in_registers:
                    tv.copy_async(tv.slice_shared(xs, [ahead, 0, 0], [M, BK]), x, offsets=[0, (j + 1) * BK])
                tv.copy_async(tv.slice_shared(ws, [ahead, 0, 0], [N, BK]), w, offsets=[0, (j + 1) * BK])
            tv.copy_async_commit()
            w_now = tv.permute(tv.slice_shared(ws, [j % 2, 0, 0], [N, BK]), [1, 0])
            if a_in_registers:
                acc = tv.dot(a, w_now, acc, wait=False)
                a = tv.load_global(x, offsets=[0, (j + 1) * BK], shape=[M, BK])
            else:
                acc = tv.dot(tv.slice_shared(xs, [j % 2, 0, 0], [M, BK]), w_now, acc, wait=False)
        tv.dot_wait(0)
        tv.store_global(y, acc, offsets=[0, 0])

    return pipelined_dot


def register_a_kernel(num_warps: int):
    return shared_dot_kernel(num_warps, a_in_registers=True)


def pipelined_register_a_kernel(num_warps: int):
    return pipelined_dot_kernel(num_warps, a_in_registers=True)


KERNELS = [shared_dot_kernel, pipelined_dot_kernel, register_a_kernel, pipelined_register_a_kernel]
KERNEL_IDS = ["waiting", "running", "a in registers", "a in registers, running"]

CASES = [
    # (dtype, num_warps, M, N, K, BK): warpgroups along the rows, along the columns, a tile repeated per
    # warpgroup (n over 256), rows of 32 and 64 bytes, and a ragged last window of k
    (torch.float16, 4, 64, 64, 64, 64),
    (torch.float16, 8, 128, 128, 200, 64),
    (torch.bfloat16, 8, 64, 96, 48, 16),
    (torch.float16, 4, 64, 512, 96, 32),
    (torch.bfloat16, 8, 192, 48, 80, 32),
]


@pytest.mark.parametrize("kernel_of", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize(("dtype", "num_warps", "m", "n", "k", "block_k"), CASES)
def test_shared_dot_matches_the_float64_product(dtype, num_warps, m, n, k, block_k, kernel_of):
    generator = torch.Generator().manual_seed(m * 7 + n * 3 + k)
    x = torch.randint(-4, 5, (m, k), generator=generator).to(dtype)
    w = torch.randint(-4, 5, (n, k), generator=generator).to(dtype)
    y = torch.full((m, n), float("nan"))
    kernel = kernel_of(num_warps)
    reference, lowered = run_both(kernel, (1,), x, w, y, M=m, N=n, BK=block_k)
    assert_same_bytes(reference, lowered)
    torch.testing.assert_close(lowered[2].double(), x.double() @ w.double().T, rtol=0, atol=0)


def test_operands_get_the_tensor_cores_placement():
    x, w, y = torch.ones(128, 64).half(), torch.ones(96, 64).half(), torch.zeros(128, 96)
    program = shared_dot_kernel(8).ir(x, w, y, M=128, N=96, BK=32)
    allocations = [item for item in program.body if type(item).__name__ == "AllocShared"]
    swizzles = [allocation.output.type.layout.swizzling for allocation in allocations]
    assert swizzles == [Swizzle(2, 3, 3), Swizzle(2, 3, 3)]  # rows of 64 bytes
    dot = next(item for body in _bodies(program.body) for item in body if isinstance(item, SharedDot))
    assert dot.output.type.layout == warpgroup_accumulator(128, 96, num_warps=8)
    for operand, k_dim in ((dot.a, 1), (dot.b, 0)):
        assert operand_form(operand.type.layout, k_dim, 16) is not None


def _bodies(body):
    yield body
    for item in body:
        for nested in ("body", "then_body", "else_body"):
            if isinstance(getattr(item, nested, None), tuple):
                yield from _bodies(getattr(item, nested))


def test_a_dot_from_shared_memory_reads_b_from_shared_memory():
    @tv.kernel(num_warps=4)
    def mixed(x: tv.Tensor, y: tv.Tensor):
        xs = tv.shared_tensor(tv.float16, [64, 16])
        b = tv.load_global(x, offsets=[0, 0], shape=[16, 8])
        acc = tv.register_tensor(tv.float32, [64, 8], init=0.0)
        tv.store_global(y, tv.dot(xs, b, acc), offsets=[0, 0])

    with pytest.raises(CompilationError, match="reads b from shared memory \\(a may be in registers\\)"):
        mixed.ir(torch.ones(16, 8).half(), torch.zeros(64, 8))


def test_an_a_in_registers_gets_the_warpgroups_fragment_layout():
    x, w, y = torch.ones(128, 64).half(), torch.ones(96, 64).half(), torch.zeros(128, 96)
    program = register_a_kernel(8).ir(x, w, y, M=128, N=96, BK=32)
    dot = next(item for body in _bodies(program.body) for item in body if isinstance(item, SharedDot))
    assert dot.a_in_registers
    assert dot.a.type.layout == warpgroup_operand_a(128, 96, 32, num_warps=8)


@pytest.mark.parametrize(("m", "n", "k", "num_warps"), [(128, 64, 32, 8), (64, 256, 16, 4), (64, 96, 48, 8)])
def test_the_a_operand_layout_is_the_isa_register_fragment(m, n, k, num_warps):
    """Each thread's A elements are those of wgmma's register fragment of A for ``.m64nNk16`` (the PTX ISA:
    warp ``w % 4`` of a warpgroup holds rows ``16 (w % 4) + lane / 4`` and ``+ 8``, at values of k ``2
    (lane % 4)``, ``+ 1``, ``+ 8`` and ``+ 9`` of each 16), for the rows of its warpgroup's accumulator
    tiles: warpgroups across the columns hold the same rows."""
    layout = warpgroup_operand_a(m, n, k, num_warps)
    accumulator = warpgroup_accumulator(m, n, num_warps).table()
    table = layout.table()
    for thread in range(num_warps * 32):
        lane = thread % 32
        # the rows of the thread's accumulator fragments, 16 a warp and instruction repeat
        rows = sorted({int(row) for row, _ in accumulator[thread]})
        expected = set()
        for first in rows[::16] if len(rows) > 16 else rows[:1]:
            base = first - lane // 4
            for step in range(k // 16):
                for row in (base + lane // 4, base + lane // 4 + 8):
                    for column in (0, 1, 8, 9):
                        expected.add((row, 16 * step + 2 * (lane % 4) + column))
        assert {tuple(int(v) for v in element) for element in table[thread]} == expected, thread


def test_a_dot_from_shared_memory_needs_warpgroups():
    x, w, y = torch.ones(64, 16).half(), torch.ones(8, 16).half(), torch.zeros(64, 8)
    with pytest.raises(CompilationError, match="warpgroups of 4 warps; the kernel has 2 warps"):
        shared_dot_kernel(2).ir(x, w, y, M=64, N=8, BK=16)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ("[32, 16], [16, 8], [32, 8]", "m a multiple of 64"),
        ("[64, 16], [16, 12], [64, 12]", "n of 8"),
        ("[64, 16], [16, 8], [64, 16]", "shapes do not match"),
    ],
)
def test_shapes_the_warpgroup_instruction_does_not_take_are_refused(shapes, message):
    a, b, c = (f"[{part}]" for part in shapes.split("], ["))
    a, c = a.replace("[[", "["), c.replace("]]", "]")
    text = f"""kernel k() num_threads=128 {{
  %a: shared<float16, {a}> = alloc_shared(dtype=float16, shape={a})
  %b: shared<float16, {b}> = alloc_shared(dtype=float16, shape={b})
  %c: register<float32, {c}> = alloc_register(dtype=float32, shape={c}, init=0.0)
  %d: register<float32, {c}> = dot_shared(a=%a, b=%b, accumulator=%c)
}}"""
    with pytest.raises((IRTypeError, CompilationError), match=message):
        run_pipeline(parse(text), CompileOptions(verify_passes=True), TILE_PASSES)


@pytest.mark.parametrize(
    ("m", "n", "num_warps"), [(128, 64, 8), (64, 512, 4), (192, 48, 8), (128, 256, 16), (64, 1024, 8)]
)
def test_accumulator_layout_is_the_warpgroup_fragment(m, n, num_warps):
    """Each thread's register ``4 j + i`` of instruction ``(r, c)`` is the element the PTX ISA's wgmma
    ``.m64nNk16`` D fragment gives: warp ``w % 4`` rows ``16 (w % 4) + lane / 4 (+ 8)``, atom ``j`` columns
    ``8 j + 2 (lane % 4) (+ 1)``, offset by the warpgroup's place and the instruction's repeat."""
    layout = warpgroup_accumulator(m, n, num_warps)
    table = layout.table()
    groups = num_warps // 4
    row_groups = max(g for g in range(1, groups + 1) if groups % g == 0 and (m // 64) % g == 0)
    column_groups = groups // row_groups
    per_group = n // column_groups
    columns = next(c for c in range(min(per_group, 256), 0, -8) if per_group % c == 0)  # an instruction's
    column_repeats = per_group // columns
    for thread in range(num_warps * 32):
        group, warp, lane = thread // 128, thread // 32 % 4, thread % 32
        group_row, group_column = divmod(group, column_groups)
        for slot in range(layout.local_size):
            instruction, register = divmod(slot, columns // 2)
            repeat_row, repeat_column = divmod(instruction, column_repeats)
            atom, element = divmod(register, 4)
            row = (repeat_row * row_groups + group_row) * 64 + 16 * warp + lane // 4 + 8 * (element // 2)
            column = (repeat_column * column_groups + group_column) * columns + 8 * atom
            column += 2 * (lane % 4) + element % 2
            assert tuple(table[thread, slot]) == (row, column), (thread, slot)


def test_warpgroup_layouts_refuse_partial_warpgroups():
    with pytest.raises(LayoutError, match="whole warpgroups"):
        warpgroup_accumulator(64, 64, num_warps=6)


@pytest.mark.gpu
@pytest.mark.parametrize("kernel_of", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize(("dtype", "num_warps", "m", "n", "k", "block_k"), CASES)
def test_shared_dot_on_the_gpu(dtype, num_warps, m, n, k, block_k, kernel_of):
    """The same kernels on the GPU (``wgmma`` on an H100 or H200, ``mma.sync`` elsewhere), against the
    float64 product, with random floats: float32 sums of k products."""
    generator = torch.Generator(device="cuda").manual_seed(m + n + k)
    x = torch.randn(m, k, generator=generator, device="cuda").to(dtype)
    w = torch.randn(n, k, generator=generator, device="cuda").to(dtype)
    y = torch.full((m, n), float("nan"), device="cuda")
    kernel_of(num_warps)[(1,)](x, w, y, M=m, N=n, BK=block_k)
    expected = x.double() @ w.double().T
    bound = 2.0**-22 * k * (x.double().abs() @ w.double().abs().T)
    assert ((y.double() - expected).abs() <= bound).all()


def test_the_lowering_takes_wgmma_where_the_target_has_it():
    """sm_90a (and the CPU interpreter, with no target) runs the warpgroups' instruction; sm_90 and sm_80
    read the operands into registers (``ldmatrix``); an operand that is not in a canonical layout (rows of
    256 bytes) is read into registers on sm_90a too. Operands that only ``cp.async`` writes take no
    async-proxy fence."""
    x, w, y = torch.ones(128, 128).half(), torch.ones(64, 128).half(), torch.zeros(128, 64)
    for block_k, target, wgmma in (
        (64, None, 4),
        (64, "sm_90a", 4),
        (64, "sm_90", 0),
        (64, "sm_80", 0),
        (128, "sm_90a", 0),
    ):
        text = _thread_ir(shared_dot_kernel(8).ir(x, w, y, M=128, N=64, BK=block_k), target)
        assert text.count(" = wgmma(") == wgmma, (block_k, target)
        assert "fence_proxy_async()" not in text, (block_k, target)
        assert (text.count("ldmatrix") > 0) == (wgmma == 0), (block_k, target)


def test_an_a_in_registers_is_read_from_registers_on_every_target():
    """sm_90a takes wgmma with the A fragment's four registers (no descriptor for A); sm_80 takes mma.sync
    on the same registers, with B read by ldmatrix."""
    x, w, y = torch.ones(128, 64).half(), torch.ones(64, 64).half(), torch.zeros(128, 64)
    program = register_a_kernel(8).ir(x, w, y, M=128, N=64, BK=32)
    wgmma = _thread_ir(program, "sm_90a")
    assert wgmma.count(" = wgmma(") == 2  # 64 x 64 a warpgroup, two steps of 16 values of k
    assert "ldmatrix" not in wgmma and "mma(" not in wgmma.replace("wgmma(", "")
    mma = _thread_ir(program, "sm_80")
    assert "wgmma" not in mma and mma.count(" = mma(") == 2 * 8 and mma.count("ldmatrix") > 0


def test_stores_into_an_operand_the_tensor_cores_read_are_fenced_before_the_next_barrier():
    """A dot whose B operand threads store into shared memory (``store_shared``), in a loop whose body ends
    with the store: on the targets where the warpgroups read it, the barrier at the top of the body (after
    the previous iteration's store) is fenced, the one between the dot and the store is not; the lowered
    loop computes the float64 product."""

    @tv.kernel(num_warps=4)
    def stored_in_loop(x: tv.Tensor, w: tv.Tensor, y: tv.Tensor):
        xs = tv.shared_tensor(x.dtype, [64, 16])
        ws = tv.shared_tensor(x.dtype, [8, 16])
        tv.copy_async(xs, x, offsets=[0, 0])
        tv.copy_async_commit()
        tv.store_shared(ws, tv.load_global(w, offsets=[0, 0], shape=[8, 16]))
        tv.copy_async_wait(0)
        acc = tv.register_tensor(tv.float32, [64, 8], init=0.0)
        for j in range(3):
            tv.sync()
            acc = tv.dot(xs, tv.permute(ws, [1, 0]), acc)
            tv.sync()
            tv.store_shared(ws, tv.load_global(w, offsets=[8 * (j + 1), 0], shape=[8, 16]))
        tv.store_global(y, acc, offsets=[0, 0])

    x, w, y = torch.randn(64, 16).half(), torch.randn(32, 16).half(), torch.zeros(64, 8)
    program = stored_in_loop.ir(x, w, y)
    for target, fenced in ((None, True), ("sm_90a", True), ("sm_90", False), ("sm_80", False)):
        lines = _thread_ir(program, target).splitlines()
        barriers = [i for i, line in enumerate(lines) if "barrier()" in line]
        fences = [i + 1 for i, line in enumerate(lines) if "fence_proxy_async()" in line]
        assert len(barriers) >= 2 and fences == ([barriers[0]] if fenced else []), target
    reference, lowered = run_both(stored_in_loop, (1,), x, w, y.clone())
    assert_same_bytes(reference, lowered)
    expected = sum(x.double() @ w[8 * j : 8 * j + 8].double().T for j in range(3))
    torch.testing.assert_close(lowered[2].double(), expected, rtol=1e-6, atol=1e-5)


def _thread_ir(program, target):
    lowered = run_pipeline(
        dataclasses.replace(program, target=target),
        CompileOptions(target=target or "cpu"),
        (lower_to_threads,),
    )
    return print_program(lowered, THREAD_IR)


def _running_dot_kernel(mistake: str):
    """A dot left running (``wait=False``) and then ``mistake``: its result read before a ``dot_wait``, an
    operand written before one, or no ``dot_wait`` at all."""

    @tv.kernel(num_warps=4)
    def running(x: tv.Tensor, w: tv.Tensor, y: tv.Tensor, MISTAKE: tv.constexpr):
        xs = tv.shared_tensor(x.dtype, [64, 16])
        ws = tv.shared_tensor(x.dtype, [8, 16])
        tv.copy_async(xs, x, offsets=[0, 0])
        tv.copy_async(ws, w, offsets=[0, 0])
        tv.copy_async_commit()
        tv.copy_async_wait(0)
        tv.sync()
        acc = tv.dot(
            xs, tv.permute(ws, [1, 0]), tv.register_tensor(tv.float32, [64, 8], init=0.0), wait=False
        )
        if MISTAKE == "write":
            tv.sync()
            tv.store_shared(ws, tv.load_global(w, offsets=[0, 0], shape=[8, 16]))
        if MISTAKE != "no wait":
            if MISTAKE != "read":
                tv.dot_wait(0)
            tv.store_global(y, acc, offsets=[0, 0])

    return running


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("read", "the result of the asynchronous dot at .*is read before a dot_wait completes it"),
        ("write", "write of shared tile ws while an asynchronous dot reads it: dot_wait first"),
        ("no wait", "asynchronous dot at .* was never completed by a dot_wait"),
    ],
)
def test_the_reference_executor_refuses_what_a_running_dot_forbids(mistake, message, monkeypatch):
    monkeypatch.setenv("TILEVM_CPU_EXECUTOR", "reference")
    # a dot whose result nothing reads is dead code: kept here, to be never waited for
    monkeypatch.setenv("TILEVM_DISABLE_PASSES", "remove_dead_code" if mistake == "no wait" else "")
    x, w, y = torch.ones(64, 16).half(), torch.ones(8, 16).half(), torch.zeros(64, 8)
    with pytest.raises(ExecutionError, match=message):
        _running_dot_kernel(mistake)[(1,)](x, w, y, MISTAKE=mistake)


def test_only_dots_from_shared_memory_run_on():
    @tv.kernel(num_warps=4)
    def registers(x: tv.Tensor, y: tv.Tensor):
        a = tv.load_global(x, offsets=[0, 0], shape=[16, 16])
        acc = tv.register_tensor(tv.float32, [16, 16], init=0.0)
        tv.store_global(y, tv.dot(a, a, acc, wait=False), offsets=[0, 0])

    with pytest.raises(CompilationError, match="wait=False\\) runs on shared tiles"):
        registers.ir(torch.ones(16, 16).half(), torch.zeros(16, 16))

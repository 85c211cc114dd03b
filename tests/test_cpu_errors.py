"""Each run-time error of the SIMT interpreter, raised at the Thread IR instruction's line: races on shared
memory, barriers reached by part of a block, accesses out of bounds or misaligned, cp.async data read
before its group is waited for or never waited for, a hung while loop, an integer division by zero."""

from __future__ import annotations

import pytest
import torch

from tests.cpu_programs import assert_error_at, run
from tilevm.errors import LaunchError

HEADER = "kernel k(%x: ptr<float32>) num_threads=64 shared_bytes=512 {"


COPY = (
    "  cp_async(destination=shared_pointer<float32>(%t * 4), source=pointer_add(%x, %t * 4), size=4, "
    "source_size=4)"
)


def _text(*lines: str) -> str:
    return "\n".join((HEADER, "  %t: int32 = let(value=thread_index())", *lines, "}"))


def _data() -> torch.Tensor:
    return torch.arange(64, dtype=torch.float32)


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (  # read after another thread's write, no barrier
            ("  store(pointer=shared_pointer<float32>(%t * 4), value=1.0)",
             "  %v: float32 = load(pointer=shared_pointer<float32>(((%t + 1) % 64) * 4), width=4)"),
            4,
            r"thread 0 of block \(0, 0, 0\) reads shared byte 4 of block 0, written by thread 1 "
            r".*store at k.py:3",
        ),
        (  # write after another thread's read
            ("  %v: float32 = load(pointer=shared_pointer<float32>(0), width=4, predicate=%t == 0)",
             "  store(pointer=shared_pointer<float32>(0), value=1.0, predicate=%t == 5)"),
            4,
            r"thread 5 .* writes shared byte 0 of block 0, read by thread 0 of block \(0, 0, 0\) with no",
        ),
        (  # write after several threads' reads
            ("  %v: float32 = load(pointer=shared_pointer<float32>(0), width=4)",
             "  store(pointer=shared_pointer<float32>(0), value=1.0, predicate=%t == 0)"),
            4,
            r"thread 0 .* writes shared byte 0 of block 0, read by other threads",
        ),
        (  # two threads writing one byte in one instruction
            ("  store(pointer=shared_pointer<float32>((%t // 2) * 4), value=1.0)",),
            3,
            "write shared byte 0 of block 0 in the same instruction",
        ),
        (  # a barrier that some threads skip
            ("  if %t < 40 {", "    barrier()", "  }"),
            4,
            r"barrier reached by 40 of the 64 threads of block \(0, 0, 0\)",
        ),
        (
            ("  %v: float32 = load(pointer=pointer_add(%x, (%t + 1) * 4), width=4)",),
            3,
            r"load of 4 bytes by thread 63 .* at byte 256 from x falls outside the tensor's storage",
        ),
        (
            ("  %v: vector<float32, 2> = load(pointer=pointer_add(%x, %t * 4), width=8)",),
            3,
            r"load of 8 bytes by thread 1 .* storage byte 4 of x, which is not a multiple of 8 "
            r"\(misaligned\)",
        ),
        (
            ("  store(pointer=shared_pointer<float32>(%t * 16), value=1.0)",),
            3,
            "store of 4 bytes at shared byte 512 is outside the block's 512 bytes of shared memory",
        ),
        (
            ("  store(pointer=shared_pointer<float32>((%t * 4) + 2), value=1.0)",),
            3,
            "store of 4 bytes at shared byte 2, which is not a multiple of 4",
        ),
        (  # reading a cp.async's destination before waiting for its group
            (COPY,
             "  cp_async_commit_group()",
             "  %v: float32 = load(pointer=shared_pointer<float32>(%t * 4), width=4)"),
            5,
            "reads shared byte 0 of block 0, the destination of a cp.async whose group was not waited for",
        ),
        (  # waited for by the issuing thread, but read by another with no barrier
            (COPY,
             "  cp_async_commit_group()",
             "  cp_async_wait_group(pending=0)",
             "  %v: float32 = load(pointer=shared_pointer<float32>((63 - %t) * 4), width=4)"),
            6,
            "written by thread 63 .*cp_async at k.py:3",
        ),
        (
            (COPY,
             "  cp_async_commit_group()",
             "  cp_async_wait_group(pending=1)"),
            3,
            r"a cp.async of thread 0 of block \(0, 0, 0\) was never waited for",
        ),
        (
            (COPY.replace("source_size=4", "source_size=5"),),
            3,
            "with a source size of 5: it is 0 to 4",
        ),
        (
            ("  %i: int32 = declare(init=0)", "  while %i < (%t + 1000) {",
             "    set(variable=%i, value=%i + 1)", "  }"),
            4,
            "while loop still running after 100 iterations",
        ),
        (
            ("  %q: int32 = let(value=7 // (%t - 3))",),
            3,
            "integer division by zero",
        ),
    ],
    ids=[
        "read-after-write", "write-after-read", "write-after-reads", "same-instruction-writes",
        "partial-barrier", "global-bounds", "global-alignment", "shared-bounds", "shared-alignment",
        "cp-async-pending", "cp-async-race", "cp-async-never-waited", "cp-async-source-size", "while-limit",
        "division-by-zero",
    ],
)  # fmt: skip
def test_error_at_its_line(lines, line, message):
    text = _text(*lines)
    if "while" in message:
        with pytest.raises(Exception, match=message) as caught:
            run(text, [_data()], while_limit=100)
        assert caught.value.location.line == line
        return
    assert_error_at(text, [_data()], line, message)


def test_a_barrier_between_accesses_and_a_thread_reading_its_own_write_are_no_race():
    out = torch.zeros(64, dtype=torch.float32)
    text = _text(
        "  store(pointer=shared_pointer<float32>(%t * 4), value=cast<float32>(%t))",
        "  %own: float32 = load(pointer=shared_pointer<float32>(%t * 4), width=4)",
        "  barrier()",
        "  %other: float32 = load(pointer=shared_pointer<float32>((63 - %t) * 4), width=4)",
        "  barrier()",
        "  store(pointer=shared_pointer<float32>(%t * 4), value=%own + %other)",
        "  store(pointer=pointer_add(%x, %t * 4), value=%own + (%other * 100.0))",
    )
    run(text, [out])
    assert out.tolist() == [t + (63 - t) * 100.0 for t in range(64)]


def test_errors_of_threads_in_later_blocks_name_their_block():
    text = _text("  %v: float32 = load(pointer=pointer_add(%x, ((block_index(0) * 64) + %t) * 4), width=4)")
    assert_error_at(text, [torch.zeros(64 * 3 - 1)], 3, r"thread 63 of block \(2, 0, 0\)", grid=(3,))


@pytest.mark.parametrize(
    ("arguments", "grid", "message"),
    [
        ([], (1,), "k takes 1 arguments, got 0"),
        ([torch.zeros(4)], (1, 1, 1, 1), "a grid is 1 to 3 positive ints"),
        ([torch.zeros(4)], (0,), "a grid is 1 to 3 positive ints"),
        ([3], (1,), "argument x must be a torch.Tensor, got int"),
    ],
)
def test_launch_arguments_are_checked_as_the_reference_executor_checks_them(arguments, grid, message):
    with pytest.raises(LaunchError, match=message):
        run(_text(), arguments, grid)


def test_a_scalar_argument_must_fit_its_dtype():
    text = "kernel k(%n: int8) num_threads=32 {\n  %m: int8 = let(value=%n)\n}"
    with pytest.raises(LaunchError, match=r"argument n must be an int in \[-128, 127\] \(int8\), got 200"):
        run(text, [200])

"""Control flow, scalar variables, the grid and dispatch of the reference executor."""

import signal
import time

import pytest
import torch

from tilevm.dtypes import boolean, float32, int32
from tilevm.errors import LaunchError, SourceLocation
from tilevm.ir import (
    EXPRESSION_CLASSES,
    INSTRUCTION_CLASSES,
    AllocRegister,
    AssignScalar,
    AssignTensor,
    Binary,
    BinaryExpr,
    BlockIndex,
    CastExpr,
    Const,
    DeclareScalar,
    GlobalView,
    GridSize,
    If,
    Instruction,
    ProgramBuilder,
    StoreGlobal,
)
from tilevm.runtime.reference import HANDLERS, ExecutionError, execute
from tilevm.runtime.reference.scalars import EVALUATORS


def test_every_instruction_and_expression_has_a_handler():
    assert set(INSTRUCTION_CLASSES) <= set(HANDLERS)
    assert set(EXPRESSION_CLASSES) == set(EVALUATORS)  # tests' own expression classes must not count


def test_an_instruction_without_a_handler_is_an_error():
    class Unknown(Instruction):
        opname = "unknown"

    program = ProgramBuilder("unknown", num_threads=32).build()
    program = type(program)(program.name, (), 32, (Unknown(),))
    with pytest.raises(ExecutionError, match="no handler for Unknown"):
        execute(program, [], grid=(1,))


def store_scalar_program(build_body):
    """A program whose body computes an int32 scalar variable with ``build_body(builder)``; it is stored to
    ``out[block]`` where block is the linear block index."""
    builder = ProgramBuilder("scalar", num_threads=32)
    out = builder.pointer_param("out", int32)
    result = build_body(builder)
    tile = builder.emit_output(AllocRegister, "tile", dtype=int32, shape=(1,), init=result)
    view = builder.emit_output(GlobalView, "view", pointer=out, shape=(Const(64),), strides=(Const(1),))
    plane = BinaryExpr("add", BlockIndex(1), BinaryExpr("mul", GridSize(1), BlockIndex(2)))
    linear = BinaryExpr("add", BlockIndex(0), BinaryExpr("mul", GridSize(0), plane))
    builder.emit(StoreGlobal(tensor=view, value=tile, offsets=(linear,), dims=(0,)))
    return builder.build()


def run_scalar(build_body, grid=(1,), **options):
    out = torch.full((64,), -1, dtype=torch.int32)
    execute(store_scalar_program(build_body), [out], grid=grid, **options)
    return out


@pytest.mark.parametrize(
    ("start", "stop", "step"), [(0, 10, 1), (3, 20, 4), (10, -3, -3), (5, 5, 1), (5, 0, 1)]
)
def test_for_follows_python_range(start, stop, step):
    def body(builder):
        total = builder.emit_output(DeclareScalar, "total", init=Const(0))
        with builder.for_range("i", Const(start), Const(stop), Const(step)) as i:
            # total = total * 3 + i keeps the order of iterations visible
            builder.emit(
                AssignScalar(variable=total, value=BinaryExpr("add", BinaryExpr("mul", total, Const(3)), i))
            )
        return total

    expected = 0
    for i in range(start, stop, step):
        expected = expected * 3 + i
    assert int(run_scalar(body)[0]) == expected


def collatz_steps(builder):
    """The number of Collatz steps from 27 to 1, counted by a while loop at kernel.py:40."""
    n = builder.emit_output(DeclareScalar, "n", init=Const(27))
    steps = builder.emit_output(DeclareScalar, "steps", init=Const(0))
    builder.location = SourceLocation("kernel.py", 40, 4)
    with builder.while_loop(BinaryExpr("ne", n, Const(1))):
        with builder.if_then(BinaryExpr("eq", BinaryExpr("mod", n, Const(2)), Const(0))):
            builder.emit(AssignScalar(variable=n, value=BinaryExpr("floordiv", n, Const(2))))
        with builder.otherwise():
            three_n = BinaryExpr("mul", n, Const(3))
            builder.emit(AssignScalar(variable=n, value=BinaryExpr("add", three_n, Const(1))))
        builder.emit(AssignScalar(variable=steps, value=BinaryExpr("add", steps, Const(1))))
    builder.location = None
    return steps


def python_collatz_steps(n):
    steps = 0
    while n != 1:
        n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
    return steps


def test_while_and_if_else():
    assert int(run_scalar(collatz_steps)[0]) == python_collatz_steps(27) == 111


def test_a_while_past_its_iteration_limit_is_an_error_at_its_line():
    assert int(run_scalar(collatz_steps, while_limit=111)[0]) == 111  # exactly the limit runs
    with pytest.raises(
        ExecutionError,
        match=r"^kernel\.py:40:4: while loop still running after 110 iterations, the limit \(a hang\?\); "
        r"execute's while_limit or TILEVM_WHILE_LIMIT sets it$",
    ):
        run_scalar(collatz_steps, while_limit=110)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(LaunchError, match=rf"while_limit must be a positive int, got {bad!r}"):
            run_scalar(collatz_steps, while_limit=bad)


def test_ctrl_c_stops_a_hanging_loop_and_leaves_nothing_behind():
    def forever(builder):
        zero = builder.emit_output(DeclareScalar, "zero", init=Const(0))
        with builder.while_loop(BinaryExpr("eq", zero, Const(0))):
            builder.emit(AssignScalar(variable=zero, value=BinaryExpr("mul", zero, Const(2))))
        return zero

    def interrupt(signum, frame):
        raise KeyboardInterrupt  # what Python's own SIGINT handler does on Ctrl-C

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_scalar(forever)
        assert time.monotonic() - started < 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert int(run_scalar(collatz_steps)[0]) == 111  # the next run starts afresh


def test_three_axis_grid_reads_block_index_and_grid_size():
    def body(builder):
        code = BinaryExpr(
            "add", BinaryExpr("mul", BlockIndex(2), Const(100)), BinaryExpr("mul", BlockIndex(1), Const(10))
        )
        return builder.emit_output(DeclareScalar, "code", init=BinaryExpr("add", code, BlockIndex(0)))

    out = run_scalar(body, grid=(4, 3, 2))
    expected = [100 * z + 10 * y + x for z in range(2) for y in range(3) for x in range(4)]
    assert out[:24].tolist() == expected
    assert (out[24:] == -1).all()


def test_loop_carried_tile_through_assign_and_scalar_casts():
    builder = ProgramBuilder("accumulate", num_threads=32)
    out = builder.pointer_param("out", float32)
    scale = builder.scalar_param("scale", float32)
    flag = builder.scalar_param("flag", boolean)
    total = builder.emit_output(AllocRegister, "total", dtype=float32, shape=(4,), init=Const(0.0, float32))
    with builder.for_range("i", Const(0), Const(5), Const(1)) as i:
        term = BinaryExpr("mul", CastExpr(i, float32), scale)
        updated = builder.emit_output(Binary, "updated", op="add", lhs=total, rhs=term)
        builder.emit(AssignTensor(destination=total, value=updated))
    builder.emit(If(condition=flag, then_body=()))
    view = builder.emit_output(GlobalView, "view", pointer=out, shape=(Const(4),), strides=(Const(1),))
    builder.emit(StoreGlobal(tensor=view, value=total, offsets=(Const(0),), dims=(0,)))
    data = torch.zeros(4)
    execute(builder.build(), [data, 0.5, True], grid=(1,))
    assert data.tolist() == [5.0] * 4  # 0.5 * (0 + 1 + 2 + 3 + 4)


def test_launch_errors():
    program = store_scalar_program(lambda builder: Const(1))
    with pytest.raises(LaunchError, match="takes 1 arguments"):
        execute(program, [], grid=(1,))
    with pytest.raises(LaunchError, match="grid"):
        execute(program, [torch.zeros(64, dtype=torch.int32)], grid=(1, 1, 1, 1))
    with pytest.raises(LaunchError, match=r"torch\.Tensor"):
        execute(program, [[0] * 64], grid=(1,))
    builder = ProgramBuilder("scalar", num_threads=32)
    builder.scalar_param("n", int32)
    with pytest.raises(LaunchError, match="int in"):
        execute(builder.build(), [2**31], grid=(1,))

"""Differential tests of the lowering: random Tile IR programs (chains of elementwise ops and casts over
random dtypes, reductions, loads and stores at random offsets of ragged tensors, masked where a tile passes
the tensor's end) give the same bits on the block-level reference executor and, lowered to Thread IR, on the
SIMT interpreter. The reference executor is the specification; the interpreter runs what the GPU would.

The result is widened exactly to a whole-byte dtype before it is stored: a sub-byte store whose threads
would share bytes is refused by the lowering (``tests/test_lower_global*.py`` covers sub-byte stores)."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilevm import dtypes
from tilevm.dtypes import DType
from tilevm.ir import (
    Binary,
    BinaryExpr,
    BlockIndex,
    Cast,
    Const,
    GlobalView,
    LoadGlobal,
    ProgramBuilder,
    Reduce,
    StoreGlobal,
    Unary,
    Where,
    check_round_trip,
)
from tilevm.ir.accumulators import reduce_dtype
from tilevm.ir.expr import operator_error
from tilevm.ir.thread import THREAD_IR
from tilevm.passes import TILE_PASSES, CompileOptions, run_pipeline
from tilevm.runtime.cpu import execute as execute_threads
from tilevm.runtime.reference import execute as execute_reference

#: the dtypes a random program computes in: machine types, sub-byte integers, small floats
DTYPES = (
    dtypes.int8, dtypes.uint8, dtypes.int16, dtypes.int32, dtypes.float16, dtypes.bfloat16, dtypes.float32,
    dtypes.int4, dtypes.uint4, dtypes.int2, dtypes.uint3, dtypes.int7, dtypes.boolean,
    dtypes.float8_e4m3, dtypes.float8_e5m2, dtypes.float6_e3m2, dtypes.float4_e2m1, dtypes.float5_e2m2,
)  # fmt: skip
UNARY = ("neg", "abs", "not", "floor", "round", "sqrt", "exp")
BINARY = ("add", "sub", "mul", "max", "min", "and", "xor", "shl", "lt", "eq")


def _valid(op: str, dtype: DType) -> bool:
    return operator_error(op, dtype) is None and not (dtype.kind == "bool" and op in ("neg", "sqrt", "exp"))


@st.composite
def programs(draw):
    """A random program over one or two input tensors and an output tensor, and its launch."""
    num_threads = draw(st.sampled_from([32, 64, 128]))
    rank = draw(st.integers(1, 2))
    tile_shape = tuple(draw(st.sampled_from([1, 2, 3, 5, 8, 12, 16, 32])) for _ in range(rank))
    tensor_shape = tuple(draw(st.integers(1, 2 * extent + 3)) for extent in tile_shape)
    offsets = tuple(draw(st.integers(0, extent)) for extent in tensor_shape)
    dtype = draw(st.sampled_from([dtype for dtype in DTYPES if dtype.nbits & (dtype.nbits - 1) == 0]))
    steps = draw(st.lists(st.sampled_from(["unary", "binary", "cast", "where"]), min_size=1, max_size=4))
    choices = [draw(st.integers(0, 10**6)) for _ in steps]
    reduce_op = draw(st.sampled_from([None, "sum", "max", "min"])) if rank == 2 else None
    seed = draw(st.integers(0, 2**31))
    return num_threads, tile_shape, tensor_shape, offsets, dtype, tuple(zip(steps, choices)), reduce_op, seed


def build(num_threads, tile_shape, tensor_shape, offsets, dtype, steps, reduce_op):
    """The program, the dtypes of its two inputs and of its output."""
    builder = ProgramBuilder("differential", num_threads)
    x_pointer = builder.pointer_param("x", dtype)
    y_pointer = builder.pointer_param("y", dtype)
    strides = tuple(Const(math.prod(tensor_shape[d + 1 :])) for d in range(len(tensor_shape)))
    shape = tuple(Const(extent) for extent in tensor_shape)
    block_offsets = (
        BinaryExpr("add", Const(offsets[0]), BinaryExpr("mul", BlockIndex(0), Const(tile_shape[0]))),
    )
    block_offsets += tuple(Const(offset) for offset in offsets[1:])
    dims = tuple(range(len(tile_shape)))

    def load(pointer):
        view = builder.emit_output(GlobalView, "view", pointer=pointer, shape=shape, strides=strides)
        return builder.emit_output(
            LoadGlobal, "tile", tensor=view, offsets=block_offsets, shape=tile_shape, dims=dims
        )

    value, other = load(x_pointer), load(y_pointer)
    for step, choice in steps:
        current = value.type.dtype
        if step == "unary":
            ops = [op for op in UNARY if _valid(op, current)]
            if ops:
                value = builder.emit_output(Unary, None, op=ops[choice % len(ops)], operand=value)
        elif step == "binary":
            ops = [op for op in BINARY if _valid(op, current)]
            rhs = (
                other
                if other.type.dtype == current
                else builder.emit_output(Cast, None, operand=other, dtype=current)
            )
            if ops:
                value = builder.emit_output(Binary, None, op=ops[choice % len(ops)], lhs=value, rhs=rhs)
        elif step == "cast":
            target = DTYPES[choice % len(DTYPES)]
            rounding = ("nearest", "zero")[(choice // len(DTYPES)) % 2]
            value = builder.emit_output(Cast, None, operand=value, dtype=target, rounding=rounding)
        else:
            rhs = (
                other
                if other.type.dtype == current
                else builder.emit_output(Cast, None, operand=other, dtype=current)
            )
            if _valid("lt", current):
                condition = builder.emit_output(Binary, None, op="lt", lhs=value, rhs=rhs)
                value = builder.emit_output(Where, None, condition=condition, on_true=value, on_false=rhs)
    out_shape = tile_shape
    final = value.type.dtype
    if final.nbits % 8:
        wide = dtypes.float32 if final.is_float else dtypes.uint8 if final.kind == "bool" else dtypes.int32
        value = builder.emit_output(Cast, None, operand=value, dtype=wide)
    if reduce_op is not None and not (reduce_op == "sum" and value.type.dtype.is_float):
        accumulate = reduce_dtype(reduce_op, value.type.dtype)
        value = builder.emit_output(
            Reduce, None, operand=value, op=reduce_op, dtype=accumulate, dim=1, keepdim=True
        )
        out_shape = (tile_shape[0], 1)
    out_dtype = value.type.dtype
    out_pointer = builder.pointer_param("out", out_dtype)
    out_strides = (Const(out_shape[1]), Const(1)) if len(out_shape) == 2 else (Const(1),)
    out_view = builder.emit_output(
        GlobalView,
        "out_view",
        pointer=out_pointer,
        shape=tuple(Const(e) for e in out_shape),
        strides=out_strides,
    )
    start = (BinaryExpr("mul", BlockIndex(0), Const(0)), *(Const(0) for _ in out_shape[1:]))
    builder.emit(StoreGlobal(tensor=out_view, value=value, offsets=start, dims=tuple(range(len(out_shape)))))
    return builder.build(), out_dtype, out_shape


def _random_bytes(count_elements: int, dtype: DType, rng: np.random.Generator) -> torch.Tensor:
    nbytes = max(1, -(-count_elements * dtype.nbits // 8))
    return torch.from_numpy(rng.integers(0, 256, nbytes, dtype=np.uint8))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_compute_the_same_bits_lowered(case):
    num_threads, tile_shape, tensor_shape, offsets, dtype, steps, reduce_op, seed = case
    program, out_dtype, out_shape = build(
        num_threads, tile_shape, tensor_shape, offsets, dtype, steps, reduce_op
    )
    rng = np.random.default_rng(seed)
    x, y = (_random_bytes(math.prod(tensor_shape), dtype, rng) for _ in range(2))
    poison = _random_bytes(math.prod(out_shape), out_dtype, rng)
    tile_program = run_pipeline(program, CompileOptions(), TILE_PASSES)
    thread_program = run_pipeline(program, CompileOptions())
    check_round_trip(thread_program, THREAD_IR)
    results = []
    for run, runnable in ((execute_reference, tile_program), (execute_threads, thread_program)):
        out = poison.clone()
        run(runnable, [x.clone(), y.clone(), out], (1,))
        results.append(out)
    assert torch.equal(results[0], results[1]), f"{program}\nreference {results[0]}\nlowered {results[1]}"

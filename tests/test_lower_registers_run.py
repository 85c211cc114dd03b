"""Register-only instructions lowered to Thread IR and run by the SIMT interpreter give the reference
executor's bytes: random chains of elementwise ops over random dtypes (low-bit integers and small floats
included), ragged shapes, broadcast and scalar operands, ``where``, ``arange``, ``permute``, ``view`` and
``convert_layout`` between random layouts (replicated ones included), every tile laid out at random."""

import numpy as np
import pytest
import torch
from layout_assignment import assign_random_layouts, random_layout

from tilevm.dtypes import (
    DType,
    bfloat16,
    boolean,
    decode,
    e8m0,
    encode,
    float4_e2m1,
    float6_e3m2,
    float8_e4m3,
    float8_e5m2,
    float16,
    float32,
    int1,
    int3,
    int4,
    int8,
    int16,
    int32,
    int64,
    pack,
    ue4m3,
    uint1,
    uint2,
    uint5,
    uint8,
    uint32,
)
from tilevm.ir import (
    Arange,
    Binary,
    Cast,
    Const,
    ConvertLayout,
    GlobalView,
    LoadGlobal,
    Permute,
    Program,
    ProgramBuilder,
    StoreGlobal,
    Unary,
    View,
    Where,
)
from tilevm.ir.expr import operator_error
from tilevm.layout import RegisterLayout
from tilevm.passes import CompileOptions, run_pipeline
from tilevm.runtime.reference import execute as execute_reference

execute_threads = pytest.importorskip("tilevm.runtime.cpu").execute

INTEGERS = [int1, int3, int4, int8, int16, int32, int64, uint1, uint2, uint5, uint8, uint32]
FLOATS = [float16, bfloat16, float32, float4_e2m1, float6_e3m2, float8_e4m3, float8_e5m2, ue4m3, e8m0]
INTEGER_BINARY = ["add", "sub", "mul", "max", "min", "and", "or", "xor", "shl", "shr", "floordiv", "mod"]
FLOAT_BINARY = ["add", "sub", "mul", "div", "max", "min"]
COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"]
INTEGER_UNARY = ["neg", "not", "abs"]
FLOAT_UNARY = ["neg", "abs", "sqrt", "floor", "ceil", "round", "trunc"]
#: a dtype of whole bytes that holds every value of a sub-byte dtype of each kind
WHOLE_BYTES = {"int": int8, "uint": uint8, "bool": uint8, "float": float32}
SHAPES = [(6, 10), (12, 5), (3, 16), (16, 8), (9, 7)]


def random_codes(dtype: DType, count: int, rng: np.random.Generator, nonzero: bool = False) -> np.ndarray:
    """Random codes of ``dtype`` (inf and NaN included, NaN as its canonical code, which is all a value
    holds); with ``nonzero``, none is the code of 0."""
    codes = rng.integers(0, dtype.num_codes, count, dtype=np.uint64)
    if dtype.is_float:
        codes = encode(decode(codes, dtype), dtype).astype(np.uint64)
    if nonzero and dtype.min_value <= 0:
        zero = encode(np.zeros(1), dtype).astype(np.uint64)[0]
        codes = np.where(codes == zero, zero + 1, codes)
    return codes


def memory(codes: np.ndarray, dtype: DType, extra: int = 0) -> torch.Tensor:
    """The codes packed into bytes, as a kernel's global memory (with ``extra`` poison bytes after)."""
    packed = pack(codes, dtype)
    return torch.from_numpy(np.concatenate([packed, np.full(extra, 0xAB, dtype=np.uint8)]))


class Kernel:
    """A one-block program built instruction by instruction, with its inputs' bytes."""

    def __init__(self, name: str, num_threads: int, rng: np.random.Generator) -> None:
        self.builder = ProgramBuilder(name, num_threads=num_threads)
        self.rng = rng
        self.arguments: list[torch.Tensor] = []

    def load(self, dtype: DType, shape: tuple[int, ...], nonzero: bool = False):
        """A tile of ``shape`` read from a new input of random codes. Elements of 3, 5, 6 or 7 bits, which
        straddle bytes, are read as a dtype of whole bytes that holds their values, then cast."""
        stored = dtype if 8 % dtype.nbits == 0 or dtype.nbits % 8 == 0 else WHOLE_BYTES[dtype.kind]
        codes = random_codes(dtype, int(np.prod(shape)), self.rng, nonzero)
        if stored != dtype:
            codes = encode(decode(codes, dtype), stored)
        pointer = self.builder.pointer_param(f"in{len(self.arguments)}", stored)
        self.arguments.append(memory(codes, stored))
        view = self._view(pointer, shape)
        offsets = (Const(0),) * len(shape)
        dims = tuple(range(len(shape)))
        tile = self.emit(LoadGlobal, "tile", tensor=view, offsets=offsets, shape=shape, dims=dims)
        return tile if stored == dtype else self.emit(Cast, "narrowed", operand=tile, dtype=dtype)

    def store(self, tile) -> None:
        """Store ``tile`` into a new output, poisoned with 0xAB bytes before the run. Sub-byte elements are
        cast to a dtype of whole bytes that holds their values first (a thread of a random layout may hold
        part of a byte, which a store cannot write alone)."""
        if tile.type.dtype.nbits < 8:
            tile = self.emit(Cast, "widened", operand=tile, dtype=WHOLE_BYTES[tile.type.dtype.kind])
        dtype, shape = tile.type.dtype, tile.type.shape
        pointer = self.builder.pointer_param(f"out{len(self.arguments)}", dtype)
        nbytes = -(-int(np.prod(shape)) * dtype.nbits // 8)
        self.arguments.append(torch.full((nbytes,), 0xAB, dtype=torch.uint8))
        view = self._view(pointer, shape)
        offsets = (Const(0),) * len(shape)
        self.builder.emit(
            StoreGlobal(tensor=view, value=tile, offsets=offsets, dims=tuple(range(len(shape))))
        )

    def emit(self, kind, name: str, layout: RegisterLayout | None = None, **fields):
        return self.builder.emit_output(kind, name, layout, **fields)

    def _view(self, pointer, shape: tuple[int, ...]):
        strides = [int(np.prod(shape[dim + 1 :])) for dim in range(len(shape))]
        return self.emit(
            GlobalView,
            "view",
            pointer=pointer,
            shape=tuple(map(Const, shape)),
            strides=tuple(map(Const, strides)),
        )

    def run(self, seed: int) -> Program:
        """Run the program by the reference executor, and lowered with random layouts (from ``seed``) by the
        SIMT interpreter, on copies of the inputs; assert both write the same bytes; return the Thread IR."""
        program = self.builder.build()
        reference = [argument.clone() for argument in self.arguments]
        execute_reference(program, reference, (1,))
        # random layouts first: layout inference keeps the layouts that are set. (The text round trip of
        # such programs, long with per-element global accesses, would triple the time: test_lower_registers
        # round-trips every construct these handlers emit.)
        threads = run_pipeline(
            assign_random_layouts(program, np.random.default_rng(seed)), CompileOptions(verify_passes=True)
        )
        lowered = [argument.clone() for argument in self.arguments]
        execute_threads(threads, lowered, (1,))
        for position, (expected, actual) in enumerate(zip(reference, lowered)):
            assert torch.equal(expected, actual), f"argument {position} differs:\n{expected}\n{actual}"
        return threads


def broadcast_shape(shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
    options = [shape, (shape[0], 1), (1, shape[1]), (shape[1],)]
    return options[int(rng.integers(len(options)))]


def elementwise_chain(kernel: Kernel, dtype: DType, shape: tuple[int, ...]):
    """A few random elementwise ops on loaded tiles (one of them broadcast) and scalars of ``dtype``; the
    last result, and a comparison selecting between two values, are stored."""
    rng = kernel.rng
    x = kernel.load(dtype, shape)
    divisor = kernel.load(dtype, broadcast_shape(shape, rng), nonzero=True)
    binary_ops = INTEGER_BINARY if dtype.is_integer else FLOAT_BINARY
    unary_ops = [
        op for op in (INTEGER_UNARY if dtype.is_integer else FLOAT_UNARY) if not operator_error(op, dtype)
    ]
    value = x
    for _ in range(3):
        if rng.random() < 0.3:
            op = unary_ops[int(rng.integers(len(unary_ops)))]
            value = kernel.emit(Unary, "unary", op=op, operand=value)
            continue
        op = binary_ops[int(rng.integers(len(binary_ops)))]
        if op in ("floordiv", "mod") or rng.random() < 0.5:
            rhs = divisor
        else:
            code = random_codes(dtype, 1, rng, nonzero=True)
            rhs = Const(decoded_scalar(code, dtype), dtype)
        lhs, rhs = (rhs, value) if rng.random() < 0.3 and op not in ("floordiv", "mod") else (value, rhs)
        value = kernel.emit(Binary, "binary", op=op, lhs=lhs, rhs=rhs)
    comparison = COMPARISONS[int(rng.integers(len(COMPARISONS)))]
    condition = kernel.emit(Binary, "compare", op=comparison, lhs=x, rhs=divisor)
    kernel.store(value)
    kernel.store(kernel.emit(Where, "where", condition=condition, on_true=value, on_false=divisor))
    kernel.store(condition)


def decoded_scalar(code: np.ndarray, dtype: DType) -> float | int:
    value = decode(code, dtype)[0]
    return int(value) if dtype.is_integer else float(value)


@pytest.mark.parametrize("dtype", INTEGERS + FLOATS, ids=str)
def test_random_elementwise_chains_give_the_reference_bytes(dtype):
    position = (INTEGERS + FLOATS).index(dtype)
    kernel = Kernel("chain", num_threads=32 * (1 + position % 2), rng=np.random.default_rng(position))
    elementwise_chain(kernel, dtype, SHAPES[position % len(SHAPES)])
    kernel.run(seed=position)


CONVERTED = [boolean, int4, uint2, float6_e3m2, int8, float16, bfloat16, float32, int64, float8_e4m3]


@pytest.mark.parametrize("dtype", CONVERTED, ids=str)
def test_convert_layout_between_random_layouts_keeps_every_element(dtype):
    # a chain of conversions between random layouts (replicated ones too), each pinned, on a ragged tile
    position = CONVERTED.index(dtype)
    rng = np.random.default_rng(100 + position)
    num_threads = 32 * (1 + position % 2)
    kernel = Kernel("convert", num_threads=num_threads, rng=rng)
    shape = SHAPES[position % len(SHAPES)]
    value = (
        kernel.load(dtype, shape)
        if dtype != boolean
        else kernel.emit(Binary, "odd", op="ne", lhs=kernel.load(uint8, shape), rhs=Const(0, uint8))
    )
    for _ in range(3):
        value = kernel.emit(ConvertLayout, "converted", random_layout(shape, num_threads, rng), operand=value)
    kernel.store(value)
    kernel.run(seed=position)


def test_arange_permute_and_view_give_the_reference_bytes():
    rng = np.random.default_rng(7)
    kernel = Kernel("rearrange", num_threads=64, rng=rng)
    # iotas of several dtypes and sizes, the small ones up to their largest value
    for dtype, size in ((int32, 40), (uint5, 32), (int3, 4), (int64, 12), (uint8, 200)):
        kernel.store(kernel.emit(Arange, "iota", dtype=dtype, size=size))
    # a transposed int4 tile, and bytes read as nibbles and halves as bytes
    nibbles = kernel.load(int4, (12, 8))
    kernel.store(kernel.emit(Permute, "transposed", operand=nibbles, dims=(1, 0)))
    packed = kernel.load(uint8, (6, 16))
    kernel.store(kernel.emit(View, "nibbles", operand=packed, dtype=int4, shape=(6, 32)))
    halves = kernel.load(float16, (4, 6, 2))
    kernel.store(kernel.emit(Permute, "moved", operand=halves, dims=(2, 0, 1)))
    kernel.store(kernel.emit(View, "bytes", operand=halves, dtype=int8, shape=(4, 6, 4)))
    for seed in range(3):
        kernel.run(seed)

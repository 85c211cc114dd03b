"""Constants and the vector moves (element, pack, bitcast, select, gather) as code generation emits them, run
on this CPU (``codegen_host``) against numpy: constants against the dtype codec, bitcasts against the bits
regrouped in numpy (element 0 in the lowest bits), gathers against numpy's concatenate and indexing."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codegen_host import codes_of, compile_host, same_codes, sample_codes
from tests.test_codegen_expressions_arithmetic import DTYPES
from tilevm.dtypes import (
    DType,
    bfloat16,
    boolean,
    encode,
    float6_e3m2,
    float8_e4m3,
    float16,
    float32,
    int3,
    int4,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint32,
)
from tilevm.ir.expr import Const, Var
from tilevm.ir.semantics import to_carrier
from tilevm.ir.thread import Bitcast, Element, Gather, Pack, Select
from tilevm.ir.types import ScalarType, VectorType

COUNT = 4099  # ragged: no multiple of a vector width

#: constants of each dtype: extremes, signs, NaN and infinities, values that round when stored
CONSTANT_VALUES = {
    "float": [
        0.0,
        -0.0,
        1.0,
        -2.5,
        float("inf"),
        float("-inf"),
        float("nan"),
        65504.0,
        1e-3,
        3.0e38,
        1e-40,
        0.1,
    ],
    "int": [0, 1, -1, 7, -8, 127, -128, 255, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 2**64 - 1, 12345],
    "bool": [True, False, True, True],
}
STORAGE_DTYPES = (float8_e4m3, int4)
#: (source register, target dtype and length) pairs of the same number of bits
BITCASTS = [
    (VectorType(float16, 2), (uint32, 1)),
    (ScalarType(uint32), (float16, 2)),
    (VectorType(int4, 8), (int32, 1)),
    (ScalarType(uint32), (int4, 8)),
    (VectorType(boolean, 8), (uint8, 1)),
    (ScalarType(uint8), (boolean, 8)),
    (VectorType(int8, 4), (float32, 1)),
    (ScalarType(bfloat16), (int16, 1)),
    (VectorType(int32, 2), (int64, 1)),
    (VectorType(uint8, 8), (bfloat16, 4)),
    (VectorType(float8_e4m3, 4), (int8, 4)),
    (ScalarType(uint32), (uint32, 1)),
]
#: bitcasts between vectors whose lengths do not divide each other (the words and codes of 3- and 6-bit
#: data), which code generation moves through inline PTX: they run on the GPU only
UNEVEN_BITCASTS = [
    (VectorType(uint32, 3), (float6_e3m2, 16)),
    (VectorType(float6_e3m2, 16), (uint32, 3)),
    (VectorType(int3, 16), (uint8, 6)),
    (VectorType(uint8, 6), (int3, 16)),
]
ALL_BITCASTS = BITCASTS + UNEVEN_BITCASTS
#: gathers: the sources' lengths (1: a scalar) and the indices into the row of their elements
GATHERS = [
    ((4,), (3, 2, 1, 0)),  # reorder
    ((8,), (2, 3)),  # slice
    ((4,), (1,)),  # one element
    ((1,), (0, 0, 0, 0)),  # broadcast a scalar
    ((2, 2), (0, 1, 2, 3)),  # concatenate
    ((4, 4), (6, 1, 5, 0)),  # interleave two vectors
    ((1, 4, 1), (5, 1, 0, 2, 3, 4)),  # scalars and a vector
    ((2, 1, 2, 4), (8, 0, 4, 2, 6, 3)),  # several of each, not all read
    ((2, 3), (4, 4, 4)),
]


def _register(dtype: DType, length: int) -> ScalarType | VectorType:
    return VectorType(dtype, length) if length > 1 else ScalarType(dtype)


def _constants(dtype: DType) -> list:
    kind = "bool" if dtype.kind == "bool" else "float" if dtype.is_float else "int"
    return CONSTANT_VALUES[kind]


@pytest.fixture(scope="module")
def functions():
    cases = {}
    for dtype in (*DTYPES, *STORAGE_DTYPES):
        cases[f"const_{dtype}"] = (Pack(tuple(Const(value, dtype) for value in _constants(dtype))), ())
    for number, (source, (dtype, length)) in enumerate(BITCASTS):
        operand = Var("x", source)
        cases[f"bitcast_{number}"] = (Bitcast(dtype, length, operand), (operand,))
    vector = Var("v", VectorType(float16, 4))
    for index in range(4):
        cases[f"element_{index}"] = (Element(vector, index), (vector,))
    scalars = tuple(Var(f"s{index}", ScalarType(int16)) for index in range(3))
    cases["pack"] = (Pack((scalars[2], scalars[0], scalars[1], scalars[0])), scalars)
    for name, condition in (("scalar", ScalarType(boolean)), ("vector", VectorType(boolean, 4))):
        inputs = (Var("c", condition), Var("t", VectorType(int32, 4)), Var("f", VectorType(int32, 4)))
        cases[f"select_{name}"] = (Select(*inputs), inputs)
    for number, (lengths, indices) in enumerate(GATHERS):
        sources = tuple(
            Var(f"g{position}", _register(uint8, length)) for position, length in enumerate(lengths)
        )
        cases[f"gather_{number}"] = (Gather(sources, indices), sources)
    compiled = compile_host(cases)
    return lambda name, *arrays, count=None: compiled[name](*arrays, count=count)


@pytest.mark.parametrize("dtype", (*DTYPES, *STORAGE_DTYPES), ids=str)
def test_constants(functions, dtype):
    """Each constant is its value rounded into the dtype, as bits; storage dtypes as their codes."""
    values = _constants(dtype)
    actual = functions(f"const_{dtype}", count=3)
    if dtype.is_integer:  # two's complement, wrapped into n bits
        expected = np.array([value & ((1 << dtype.nbits) - 1) for value in values], dtype=np.uint64)
    elif dtype.is_float and dtype not in DTYPES:
        expected = encode(np.array(values), dtype)
    else:
        expected = codes_of(to_carrier(np.array(values), dtype), dtype)
    assert not same_codes(actual, np.broadcast_to(expected, actual.shape), dtype).any()


def _regroup(codes: np.ndarray, bits: int, target_bits: int) -> np.ndarray:
    """Each row of codes of ``bits`` bits as one register (element 0 in the lowest bits), cut into codes of
    ``target_bits`` bits: through a matrix of single bits, for registers of any width."""
    codes = codes.reshape(len(codes), -1).astype(np.uint64)
    single = (codes[:, :, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)  # [rows, codes, bits]
    grouped = single.reshape(len(codes), -1, target_bits)
    return np.bitwise_or.reduce(grouped << np.arange(target_bits, dtype=np.uint64), axis=2)


@pytest.mark.parametrize("number", range(len(BITCASTS)), ids=lambda number: str(BITCASTS[number]))
def test_bitcast(functions, number):
    check_bitcast(functions, number)


def check_bitcast(run, number: int) -> None:
    """``run(name, *codes)``, the compiled bitcast, against the bits regrouped in numpy."""
    source, (dtype, length) = ALL_BITCASTS[number]
    rng = np.random.default_rng(number)
    source_length = source.length if isinstance(source, VectorType) else 1
    codes = sample_codes(source.dtype, COUNT * source_length, rng)
    codes = codes.reshape(COUNT, source_length) if source_length > 1 else codes
    actual = run(f"bitcast_{number}", codes)
    expected = _regroup(codes, source.dtype.nbits, dtype.nbits)
    assert np.array_equal(actual.reshape(COUNT, length), expected.astype(actual.dtype))


def test_element_and_pack(functions):
    rng = np.random.default_rng(7)
    vectors = sample_codes(float16, COUNT * 4, rng).reshape(COUNT, 4)
    for index in range(4):
        assert np.array_equal(functions(f"element_{index}", vectors), vectors[:, index])
    scalars = [sample_codes(int16, COUNT, rng) for _ in range(3)]
    packed = functions("pack", *scalars)
    assert np.array_equal(packed, np.stack([scalars[2], scalars[0], scalars[1], scalars[0]], axis=1))


@pytest.mark.parametrize("condition", ["scalar", "vector"])
def test_select(functions, condition):
    rng = np.random.default_rng(len(condition))
    shape = (COUNT, 4) if condition == "vector" else (COUNT,)
    chosen = rng.integers(0, 2, shape).astype(np.uint8)
    if_true, if_false = (
        rng.integers(0, 2**32, (COUNT, 4), dtype=np.uint64).astype(np.uint32) for _ in range(2)
    )
    actual = functions(f"select_{condition}", chosen, if_true, if_false)
    mask = chosen.astype(bool) if condition == "vector" else chosen.astype(bool)[:, None]
    assert np.array_equal(actual, np.where(mask, if_true, if_false))


@pytest.mark.parametrize("number", range(len(GATHERS)), ids=lambda number: str(GATHERS[number]))
def test_gather(functions, number):
    lengths, indices = GATHERS[number]
    rng = np.random.default_rng(100 + number)
    sources = [
        rng.integers(0, 256, (COUNT, length) if length > 1 else COUNT).astype(np.uint8) for length in lengths
    ]
    actual = functions(f"gather_{number}", *sources)
    row = np.concatenate([source.reshape(COUNT, -1) for source in sources], axis=1)
    expected = row[:, indices]
    assert np.array_equal(actual.reshape(COUNT, -1), expected)

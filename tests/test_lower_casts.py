"""Every cast pair, lowered by ``convert``, run by the SIMT interpreter on every code of its source dtype
(16-bit sources: all 65536; 32- and 64-bit sources: a seeded random sample with the special values and the
target's rounding boundaries) and compared bit for bit with ``tilevm.ir.semantics.cast`` through the
reference codec.

One Thread IR program per pair, one launch: each thread loads 16 elements and converts them in each
rounding (only to nearest between integers and bools, where rounding has no say). A second test runs the
other forms of each sequence, a slice of 5 elements (padded to whole words) and a scalar, on the pairs
among a sample of dtypes. Outputs start as 0xAB bytes and every element is checked.
``test_lower_casts_sequences`` verifies the programs' types and text form.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tilevm.dtypes import (
    DType,
    all_dtypes,
    bfloat16,
    dtype,
    float8_e4m3,
    float16,
    float32,
    int_type,
    pack,
    uint8,
    unpack,
)
from tilevm.ir import Param, Program, semantics
from tilevm.ir.expr import BinaryExpr, BlockIndex, Const, Var
from tilevm.ir.rewrite import walk_instructions
from tilevm.ir.thread import Bitcast, ConvertPack, Gather, Load, PointerAdd, Store, ThreadIndex
from tilevm.ir.types import PointerType
from tilevm.passes.lower.casts import convert, plain_cast, sequence_for
from tilevm.passes.lower.lowering import Lowering
from tilevm.runtime.cpu import execute
from tilevm.runtime.reference.carrier import carrier_to_codes, codes_to_carrier

NUM_THREADS = 32
LENGTH = 16
WHOLE, PART, ONE = tuple(range(LENGTH)), (3, 4, 5, 6, 7), (11,)
#: the dtypes whose pairs run the padded and scalar forms: one or more of each family and width class
FORM_DTYPES = tuple(
    dtype(name)
    for name in (
        "bool", "int1", "uint3", "int4", "int8", "int16", "int64", "float16", "bfloat16", "float32",
        "f4e2m1", "f7e1m5", "f8e4m3", "f8e5m2", "e8m0", "ue4m3",
    )
)  # fmt: skip
DTYPES = all_dtypes()


def _sequence_of_its_own(source: DType, target: DType) -> bool:
    """Whether the pair lowers to a sequence: between machine dtypes, a plain cast is the interpreter's
    ``tilevm.ir.semantics.cast`` itself, which a comparison with the semantics would compare with itself
    (``test_lower_casts_sequences`` checks that those pairs are plain casts)."""
    return source != target and sequence_for(source, target, "nearest").lower is not plain_cast


PAIRS = [pair for pair in itertools.product(DTYPES, DTYPES) if _sequence_of_its_own(*pair)]


def _chunks(nbytes: int) -> list[tuple[int, int]]:
    """(offset, width) of the aligned accesses that move a thread's ``nbytes`` bytes, which start at a
    multiple of ``nbytes``: the largest power of two dividing it, at most 16."""
    width = min(16, nbytes & -nbytes)
    return [(offset, width) for offset in range(0, nbytes, width)]


def _load_bytes(lowering: Lowering, pointer: Var, base: BinaryExpr, nbytes: int, dtype: DType, length: int):
    loads = [
        lowering.define(
            Load, "bytes", pointer=PointerAdd(pointer, BinaryExpr("add", base, Const(offset))), width=width
        )
        for offset, width in _chunks(nbytes)
    ]
    raw = lowering.let("raw", Gather(tuple(loads), tuple(range(nbytes))))
    return lowering.let("value", Bitcast(dtype, length, raw))


def _store_bytes(lowering: Lowering, pointer: Var, base: BinaryExpr, value, nbytes: int) -> None:
    raw = lowering.let("raw", Bitcast(uint8, nbytes, value))
    for offset, width in _chunks(nbytes):
        piece = Gather((raw,), tuple(range(offset, offset + width)))
        lowering.emit(Store(pointer=PointerAdd(pointer, BinaryExpr("add", base, Const(offset))), value=piece))


def _stored_length(indices: tuple[int, ...]) -> int:
    """The elements an output stores per thread: its slice padded with copies of its first element to 16,
    so that any dtype fills two whole bytes or more."""
    return max(LENGTH, len(indices))


def roundings(source: DType, target: DType) -> tuple[str, ...]:
    """The roundings to test: both, unless integers and bools are all there is (rounding has no say)."""
    return ("nearest",) if not source.is_float and not target.is_float else ("nearest", "zero")


#: one output of a program: the indices of the thread's elements it converts, and the rounding
Form = tuple[tuple[int, ...], str]


def cast_program(source: DType, target: DType, forms: list[Form], machine: str | None = None) -> Program:
    """The program: ``x`` holds each thread's 16 source elements, each output one form's conversion, lowered
    for the ``machine`` target."""
    x = Var("x", PointerType(uint8))
    pointers = [Var(f"y{position}", PointerType(uint8)) for position in range(len(forms))]
    lowering = Lowering(Program("cast", (), NUM_THREADS, (), target=machine), {})
    with lowering.collect() as body:
        block = BinaryExpr("mul", BlockIndex(0), Const(NUM_THREADS))
        thread = lowering.let("thread", BinaryExpr("add", block, ThreadIndex()))
        nbytes = LENGTH * source.nbits // 8
        value = _load_bytes(lowering, x, BinaryExpr("mul", thread, Const(nbytes)), nbytes, source, LENGTH)
        for (indices, rounding), pointer in zip(forms, pointers):
            operand = Gather((value,), indices) if len(indices) < LENGTH else value
            converted = convert(lowering, lowering.let("operand", operand), target, rounding)
            stored = _stored_length(indices)
            padded = Gather((converted,), (*range(len(indices)), *([0] * (stored - len(indices)))))
            nbytes = stored * target.nbits // 8
            _store_bytes(lowering, pointer, BinaryExpr("mul", thread, Const(nbytes)), padded, nbytes)
    params = tuple(Param(variable, 16) for variable in (x, *pointers))
    return Program("cast", params, NUM_THREADS, tuple(body), target=machine)


def expected_codes(codes: np.ndarray, source: DType, target: DType, rounding: str) -> np.ndarray:
    """What ``cast`` gives for each source code, as target codes (the reference codec's: NaN canonical)."""
    carrier = codes_to_carrier(codes, source)
    return carrier_to_codes(semantics.cast(carrier, source, target, rounding), target).astype(np.uint64)


def _float32_codes(values: np.ndarray) -> np.ndarray:
    """The float32 codes of ``values`` and of their float32 neighbours on both sides."""
    near = np.asarray(values, dtype=np.float64)
    near = near[np.abs(near) < 3.4e38].astype(np.float32)
    both = np.concatenate(
        [near, np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(-np.inf))]
    )
    return both.view(np.uint32).astype(np.uint64)


def _boundaries(target: DType, rng: np.random.Generator) -> np.ndarray:
    """Values where rounding to ``target`` changes: the midpoints between its neighbouring values (a
    sample of them for 16-bit targets), and its range's ends."""
    if target.kind == "bool" or target.nbits > 16:  # machine targets: a plain cast, no boundary to seek
        return rng.standard_normal(64) * 1e6
    if target.is_integer:
        low, high = float(target.min_value), float(target.max_value)
        steps = np.arange(-3, 4, 0.5)
        return np.concatenate([low + steps, high + steps, steps, rng.uniform(low, high, 64)])
    values = np.unique(np.abs(codes_to_carrier(np.arange(target.num_codes, dtype=np.uint64), target)))
    values = values[np.isfinite(values)]
    middles = (values[1:] + values[:-1]) / 2
    if len(middles) > 2048:
        middles = rng.choice(middles, 2048, replace=False)
    edges = np.concatenate([middles, values[-1:] * 1.5, values[-1:] * 2])
    return np.concatenate([edges, -edges])


def source_codes(source: DType, target: DType, rng: np.random.Generator) -> np.ndarray:
    """Every code of a source of up to 16 bits; else a random sample, the special values and the codes
    around ``target``'s rounding boundaries."""
    if source.nbits <= 16:
        return np.arange(source.num_codes, dtype=np.uint64)
    bits = source.nbits
    random_bits = rng.integers(0, 1 << 63, 4096, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, 4096, dtype=np.uint64
    )
    random_bits >>= rng.integers(0, bits, 4096, dtype=np.uint64)  # every magnitude, not only huge ones
    mask = np.uint64((1 << bits) - 1)
    if source.is_float:
        specials = np.array(
            [0.0, -0.0, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 2.0**-149, 2.0**-126, 2.0**-127]
        )
        payload_nans = np.array([0x7FC0_0001, 0xFFC0_0000, 0x7F80_0001], dtype=np.uint64)
        scaled = rng.standard_normal(4096) * np.exp2(rng.integers(-140, 130, 4096))
        values = np.concatenate([specials, _boundaries(target, rng), scaled])
        return np.concatenate([_float32_codes(values), payload_nans, random_bits & mask])
    edges = _boundaries(target, rng)
    edges = edges[np.abs(edges) < 2.0**62]
    near = np.round(edges).astype(np.int64)[:, None] + np.arange(-2, 3)
    wide = np.array([2**53 + 1, 2**53 + 3, 2**62 + 2**61 - 1, 2**62 + 2**61 + 1, 3 * 2**61 + 2**8 - 1])
    integers = np.concatenate([near.reshape(-1), wide, -wide, np.arange(-300, 300)])
    return np.concatenate([integers.view(np.uint64) & mask, random_bits & mask, [mask, mask >> np.uint64(1)]])


def run_cast(
    source: DType, target: DType, codes: np.ndarray, forms: list[Form], machine: str | None = None
) -> list[np.ndarray]:
    """The program run on ``codes`` (padded to whole blocks): each output's codes, [threads, stored]."""
    per_launch = NUM_THREADS * LENGTH
    codes = np.resize(codes, -(-len(codes) // per_launch) * per_launch)
    threads = len(codes) // LENGTH
    stored = [_stored_length(indices) for indices, _ in forms]
    results = [
        torch.full((threads * count * target.nbits // 8,), 0xAB, dtype=torch.uint8) for count in stored
    ]
    execute(
        cast_program(source, target, forms, machine),
        [torch.from_numpy(pack(codes, source)), *results],
        (threads // NUM_THREADS,),
    )
    raw_codes = int_type(target.nbits, signed=False)
    return [
        unpack(result.numpy(), raw_codes, threads * count).reshape(threads, count)
        for result, count in zip(results, stored)
    ]


def check_forms(
    source: DType, target: DType, codes: np.ndarray, forms: list[Form], machine: str | None = None
) -> None:
    """Run the forms, lowered for ``machine``, on ``codes`` and compare every output element with the
    semantics."""
    results = run_cast(source, target, codes, forms, machine)
    codes = np.resize(codes, (results[0].shape[0], LENGTH))
    for (indices, rounding), actual in zip(forms, results):
        picked = codes[:, [*indices, *([indices[0]] * (actual.shape[1] - len(indices)))]]
        expected = expected_codes(picked, source, target, rounding)
        wrong = np.argwhere(actual.astype(np.uint64) != expected)
        if len(wrong):
            thread, element = wrong[0]
            raise AssertionError(
                f"{source} -> {target} ({rounding}, {len(indices)} elements): {len(wrong)} elements differ; "
                f"code {int(picked[thread, element]):#x} gave {int(actual[thread, element]):#x}, expected "
                f"{int(expected[thread, element]):#x}"
            )


def _seed(source: DType, target: DType) -> np.random.Generator:
    return np.random.default_rng(DTYPES.index(source) * 1000 + DTYPES.index(target))


@pytest.mark.parametrize("source, target", PAIRS, ids=[f"{source}-{target}" for source, target in PAIRS])
def test_every_code(source: DType, target: DType):
    codes = source_codes(source, target, _seed(source, target))
    check_forms(source, target, codes, [(WHOLE, rounding) for rounding in roundings(source, target)])


FORM_PAIRS = [
    (source, target) for source, target in itertools.product(FORM_DTYPES, FORM_DTYPES) if source != target
]


@pytest.mark.parametrize(
    "source, target", FORM_PAIRS, ids=[f"{source}-{target}" for source, target in FORM_PAIRS]
)
def test_padded_and_scalar_forms(source: DType, target: DType):
    rng = _seed(source, target)
    codes = source_codes(source, target, rng)
    codes = rng.choice(codes, min(len(codes), 4096), replace=False)
    forms = [(indices, rounding) for indices in (PART, ONE) for rounding in roundings(source, target)]
    check_forms(source, target, codes, forms)


@pytest.mark.parametrize("source", [float32, float16, bfloat16])
def test_float8_narrowing_without_the_float8_cvt_of_sm_89(source: DType):
    # sm_80 and sm_86 have no cvt to e4m3x2: their sequence rounds in integer arithmetic, code for code as
    # the semantics say (the cvt itself is checked on the GPU)
    forms = [(WHOLE, "nearest")]
    for machine, uses_cvt in (("sm_80", False), ("sm_86", False), ("sm_89", True), ("sm_90", True)):
        program = cast_program(source, float8_e4m3, forms, machine)
        packs = [item for item in walk_instructions(program.body) if isinstance(item, ConvertPack)]
        assert bool(packs) == uses_cvt, machine
    codes = source_codes(source, float8_e4m3, _seed(source, float8_e4m3))
    check_forms(source, float8_e4m3, codes, forms, machine="sm_80")

"""The compute instructions on the GPU (``codegen_gpu``), against Python models of the PTX ISA's definitions
written here: ``lop3`` (the table's minterms), ``prmt`` (each mode's byte selection), ``shuffle`` (Thread IR's
segments of ``width`` lanes), ``cvt_pack`` (``tilevm.ir.semantics.cast``, satfinite for float8), and ``mma``
of every shape and dtype against a numpy matrix product of the fragments placed by the ISA's formulas."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.codegen_gpu import GpuModule, build_kernels, device_target  # noqa: E402
from tests.codegen_host import codes_of, from_codes, same_codes  # noqa: E402
from tests.test_codegen_compute_ptx import MMA_CASES, _mma  # noqa: E402
from tilevm.codegen.targets import TARGETS  # noqa: E402
from tilevm.dtypes import bfloat16, float8_e4m3, float8_e5m2, float16, float32, int32, uint32  # noqa: E402
from tilevm.ir.expr import Var  # noqa: E402
from tilevm.ir.semantics import cast  # noqa: E402
from tilevm.ir.thread import ConvertPack, Lop3, Prmt, Shuffle  # noqa: E402
from tilevm.ir.thread.compute import PRMT_MODES, SHUFFLE_MODES, mma_fragment_types  # noqa: E402
from tilevm.ir.types import ScalarType, VectorType  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

COUNT = 1 << 14  # threads: whole warps
WORD = ScalarType(uint32)
TABLES = (0x00, 0xFF, 0xE8, 0x96, 0x80, 0xFE, 0x6A, 0x1B, 0xCA, 0x3C, 0x5A, 0xF0, 0xCC, 0xAA, 0x01, 0x7F)
WIDTHS = (1, 2, 4, 8, 16, 32)
PACKS = [
    (float16, "nearest"),
    (float16, "zero"),
    (bfloat16, "nearest"),
    (bfloat16, "zero"),
    (float8_e4m3, "nearest"),
    (float8_e5m2, "nearest"),
]


def _float8_ready(dtype) -> bool:
    return not (dtype.is_float and dtype.nbits == 8) or TARGETS[device_target()].has("float8_mma")


def _cases() -> dict[str, tuple]:
    words = tuple(Var(name, WORD) for name in "abc")
    built = {}
    for table in TABLES:
        lop3 = Lop3(output=Var("l", WORD), a=words[0], b=words[1], c=words[2], table=table)
        built[f"lop3_{table}"] = (words, (lop3,), (lop3.output,))
    for mode in PRMT_MODES:
        prmt = Prmt(output=Var("p", WORD), a=words[0], b=words[1], selector=words[2], mode=mode)
        built[f"prmt_{mode}"] = (words, (prmt,), (prmt.output,))
    lane = Var("lane", ScalarType(int32))
    for mode in SHUFFLE_MODES:
        for width in WIDTHS:
            value = Var("value", VectorType(float16, 2))  # any 32 bits: an f16 pair moves as its bits
            shuffle = Shuffle(output=Var("moved", value.type), mode=mode, value=value, lane=lane, width=width)
            built[f"shuffle_{mode}_{width}"] = ((value, lane), (shuffle,), (shuffle.output,))
    high, low = Var("high", ScalarType(float32)), Var("low", ScalarType(float32))
    for dtype, rounding in PACKS:
        if _float8_ready(dtype):
            pack = ConvertPack(
                output=Var("p", VectorType(dtype, 2)), high=high, low=low, dtype=dtype, rounding=rounding
            )
            built[f"pack_{dtype}_{rounding}"] = ((high, low), (pack,), (pack.output,))
    for number, case in enumerate(MMA_CASES):
        if _float8_ready(case[1]):
            variables, mma = _mma(*case)
            built[f"mma_{number}"] = (variables, (mma,), mma.outputs)
    return built


@pytest.fixture(scope="module")
def gpu():
    kernels = _cases()
    return GpuModule(build_kernels(kernels, device_target()), kernels)


def _words(rng: np.random.Generator, count: int = COUNT) -> np.ndarray:
    return rng.integers(0, 1 << 32, count, dtype=np.uint64).astype(np.uint32)


@pytest.mark.parametrize("table", TABLES, ids=hex)
def test_lop3(gpu, table):
    """Bit i of the result is bit (4 a_i + 2 b_i + c_i) of the table (the PTX ISA's lop3.b32)."""
    rng = np.random.default_rng(table)
    a, b, c = _words(rng), _words(rng), _words(rng)
    (actual,) = gpu(f"lop3_{table}", a, b, c)
    expected = np.zeros(COUNT, dtype=np.uint32)
    for bit in range(32):
        index = ((a >> bit) & 1) * 4 + ((b >> bit) & 1) * 2 + ((c >> bit) & 1)
        expected |= ((np.uint32(table) >> index) & 1) << np.uint32(bit)
    assert np.array_equal(actual, expected)


def _permute(a: int, b: int, selector: int, mode: str) -> int:
    """prmt.b32{.mode} d, a, b, c as the PTX ISA defines it, on one word."""
    data = [(a >> 8 * k) & 0xFF for k in range(4)] + [(b >> 8 * k) & 0xFF for k in range(4)]
    n = selector & 3
    picks = {
        "f4e": [n + k for k in range(4)],
        "b4e": [(n - k) % 8 for k in range(4)],
        "rc8": [n] * 4,
        "ecl": [max(k, n) for k in range(4)],
        "ecr": [min(k, n) for k in range(4)],
        "rc16": [2 * (n % 2) + k % 2 for k in range(4)],
    }
    result = 0
    for k in range(4):
        if mode == "default":
            control = selector >> 4 * k & 0xF
            byte = data[control & 7]
            if control & 8:  # the byte's sign, repeated
                byte = 0xFF if byte & 0x80 else 0
        else:
            byte = data[picks[mode][k]]
        result |= byte << 8 * k
    return result


@pytest.mark.parametrize("mode", PRMT_MODES)
def test_prmt(gpu, mode):
    rng = np.random.default_rng(PRMT_MODES.index(mode))
    a, b, selector = _words(rng, 4096), _words(rng, 4096), _words(rng, 4096)
    (actual,) = gpu(f"prmt_{mode}", a, b, selector)
    expected = [_permute(int(x), int(y), int(s), mode) for x, y, s in zip(a, b, selector)]
    assert actual.tolist() == expected


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("mode", SHUFFLE_MODES)
def test_shuffle(gpu, mode, width):
    """Each thread reads the lane Thread IR's shuffle names (its own value where the source leaves the
    segment); the lane operand differs from thread to thread and goes beyond 31 (its low 5 bits count)."""
    rng = np.random.default_rng([SHUFFLE_MODES.index(mode), width])
    values = rng.integers(0, 1 << 16, (COUNT, 2)).astype(np.uint16)
    operands = rng.integers(0, 1 << 10, COUNT).astype(np.int32)
    (actual,) = gpu(f"shuffle_{mode}_{width}", values, operands.view(np.uint32))
    thread = np.arange(COUNT)
    lane, warp = thread % 32, thread - thread % 32
    offset = operands & 31
    start = lane // width * width
    source = {
        "idx": start + offset % width,
        "up": lane - offset,
        "down": lane + offset,
        "xor": lane ^ offset,
    }[mode]
    valid = source >= start if mode == "up" else source <= start + width - 1
    expected = values[warp + np.where(valid, source, lane)]
    assert np.array_equal(actual, expected)


@pytest.mark.parametrize(("dtype", "rounding"), PACKS, ids=str)
def test_cvt_pack(gpu, dtype, rounding):
    """low in element 0, high in element 1, each rounded as the semantics' cast (float8: satfinite, the
    largest finite value for anything beyond it but NaN)."""
    if not _float8_ready(dtype):
        pytest.skip("float8 conversions need sm_89")
    rng = np.random.default_rng(PACKS.index((dtype, rounding)))
    halves = [rng.integers(0, 1 << 32, COUNT, dtype=np.uint64).astype(np.uint32) for _ in range(2)]
    normal = rng.standard_normal(COUNT).astype(np.float32) * np.float32(500.0)
    halves[1][: COUNT // 2] = normal[: COUNT // 2].view(np.uint32)  # ordinary values (random bits are huge)
    high, low = halves
    (actual,) = gpu(f"pack_{dtype}_{rounding}", high, low)
    expected = []
    for word in (low, high):
        values = from_codes(word, float32)
        if dtype.nbits == 8:
            values = np.clip(values, -dtype.max_value, dtype.max_value)
        expected.append(codes_of(cast(values, float32, dtype, rounding), dtype))
    expected = np.stack(expected, axis=1)
    assert not same_codes(actual, expected, dtype).any()


def _place(
    shape: str, fragments: np.ndarray, operand: str, per_register: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of each lane's fragment elements ``[32, registers, per_register]`` (the PTX ISA's
    formulas: group = lane / 4, thread = lane % 4)."""
    lane = np.arange(32)[:, None, None]
    group, thread = lane // 4, lane % 4
    register = np.arange(fragments.shape[1])[None, :, None]
    element = np.arange(per_register)[None, None, :]
    zero = 0 * register * element
    if operand == "a":
        return group + 8 * (register % 2) + zero, thread * per_register + element + 4 * per_register * (
            register // 2
        )
    if operand == "b":
        return thread * per_register + element + 4 * per_register * register, group + zero
    return group + 8 * ((register * per_register + element) // 2), 2 * thread + (
        register * per_register + element
    ) % 2


@pytest.mark.parametrize("number", range(len(MMA_CASES)), ids=lambda number: str(MMA_CASES[number]))
def test_mma(gpu, number):
    """D = A @ B + C for random small integers (exact in every accumulator), fragments placed by the ISA."""
    shape, a_dtype, b_dtype, accumulator = MMA_CASES[number]
    if not _float8_ready(a_dtype):
        pytest.skip("float8 mma needs sm_89")
    rows, columns, depth = (int(x) for x in shape[1:].replace("n", " ").replace("k", " ").split())
    warps = 8
    a_types, _, c_types = mma_fragment_types(shape, a_dtype, accumulator)
    b_types = mma_fragment_types(shape, b_dtype, accumulator)[1]
    rng = np.random.default_rng(number)

    def matrix(dtype, shape_):
        low, high = (max(dtype.min_value, -4), min(dtype.max_value, 4))
        return rng.integers(low, high + 1, (warps, *shape_)).astype(np.float64)

    a, b = matrix(a_dtype, (rows, depth)), matrix(b_dtype, (depth, columns))
    c = rng.integers(-64, 65, (warps, rows, columns)).astype(np.float64)
    arrays = []
    for matrix_, types, operand, dtype in (
        (a, a_types, "a", a_dtype),
        (b, b_types, "b", b_dtype),
        (c, c_types, "c", accumulator.dtype),
    ):
        per_register = types[0].length if isinstance(types[0], VectorType) else 1
        place_rows, place_columns = _place(shape, np.zeros((32, len(types))), operand, per_register)
        fragment = matrix_[:, place_rows, place_columns]  # [warps, 32, registers, per_register]
        fragment = fragment.astype(np.int64) if dtype.is_integer else fragment
        codes = codes_of(fragment.reshape(-1), dtype).reshape(warps * 32, len(types), per_register)
        for register in range(len(types)):
            arrays.append(codes[:, register, :] if per_register > 1 else codes[:, register, 0])
    outputs = gpu(f"mma_{number}", *arrays, count=warps * 32)
    expected = a @ b + c
    per_register = c_types[0].length if isinstance(c_types[0], VectorType) else 1
    place_rows, place_columns = _place(shape, np.zeros((32, len(c_types))), "c", per_register)
    expected_fragments = expected[:, place_rows, place_columns].reshape(
        warps * 32, len(c_types), per_register
    )
    for register, output in enumerate(outputs):
        values = from_codes(output, accumulator.dtype).reshape(warps * 32, per_register)
        assert np.array_equal(values, expected_fragments[:, register, :]), (shape, a_dtype, b_dtype, register)

"""Gathers of packed 1- to 8-bit elements computed on 32-bit words (``tilevm.passes.lower.packed_gather``).

Each thread loads 16-byte strings, views them as the narrow dtype, permutes the elements into another
order held in its own registers (a ``convert_layout`` to a row-major layout of the permuted tile: a gather
within the thread), views them back as bytes and stores them: run by the SIMT interpreter (and on the GPU,
where the test is marked ``gpu``), the bytes must be numpy's permutation of the bits, on ragged tensors
(the rows past the end read as zeros, never written). The conftest compiles every kernel to PTX for sm_80
and sm_90 and assembles it with ptxas.
"""

import math

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.dtypes import DType, decode
from tilevm.layout import local, spatial
from tilevm.passes.lower.packed_gather import segments_of_word

#: the dtype of each width that the kernels view the bytes as (signed, unsigned and float codes alike)
DTYPES = [tv.uint1, tv.int2, tv.int3, tv.uint4, tv.int5, tv.int6, tv.uint7, tv.int8, tv.float6_e3m2]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
LANES, LOAD_BYTES = 32, 16


@tv.kernel(num_warps=1)
def regroup(packed: tv.Tensor[tv.uint8, 3], out: tv.Tensor[tv.uint8, 2], CODE: tv.constexpr,
            SHAPE: tv.constexpr, ORDER: tv.constexpr, LAYOUT: tv.constexpr,
            TARGET: tv.constexpr):  # fmt: skip
    """Each lane's ``loads`` strings of 16 bytes as ``CODE`` elements of ``[32, *SHAPE]``, permuted by
    ``ORDER`` into the registers of ``TARGET``, stored back as bytes."""
    window = tv.load_global(packed, offsets=[0, 0, 0], shape=list(LAYOUT.shape), layout=LAYOUT)
    codes = tv.view(tv.permute(window, [1, 0, 2]), CODE, [LANES, *SHAPE])
    permuted = tv.convert_layout(tv.permute(codes, ORDER), TARGET)
    tv.store_global(out, tv.view(permuted, tv.uint8, [LANES, LAYOUT.shape[0] * LOAD_BYTES]), offsets=[0, 0])


def random_permutation(count: int, rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A random split of ``count`` (a power of two) into 2 or 3 dims, and a random order of them that
    moves something (the lane dim, 0, stays first)."""
    exponent = count.bit_length() - 1
    dims = int(rng.integers(2, 4))
    cuts = np.sort(rng.choice(np.arange(1, exponent), size=dims - 1, replace=False))
    shape = tuple(int(2 ** (high - low)) for low, high in zip([0, *cuts], [*cuts, exponent]))
    order = tuple(range(dims))
    while order == tuple(range(dims)):
        order = tuple(int(dim) for dim in rng.permutation(dims))
    return shape, (0, *(dim + 1 for dim in order))


def expected_bytes(strings: np.ndarray, bits: int, shape: tuple, order: tuple) -> np.ndarray:
    """numpy's permutation of each row's ``bits``-bit fields (least significant bit first), repacked."""
    rows = strings.shape[0]
    fields = np.unpackbits(strings, axis=1, bitorder="little").reshape(rows, *shape, bits)
    permuted = fields.transpose(*order, len(shape) + 1).reshape(rows, -1)
    return np.packbits(permuted, axis=1, bitorder="little")


def run_regroup(dtype: DType, rows: int, seed: int, device: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """The bytes the kernel stores on ``device`` for random strings of ``rows`` lanes, the expected bytes,
    and the constexprs."""
    rng = np.random.default_rng(seed)
    loads = dtype.nbits // math.gcd(dtype.nbits, 8)  # the fewest loads that hold whole elements
    count = loads * LOAD_BYTES * 8 // dtype.nbits
    shape, order = random_permutation(count, rng)
    permuted_shape = [(LANES, *shape)[dim] for dim in order]
    constexprs = dict(
        CODE=dtype,
        SHAPE=shape,
        ORDER=order,
        LAYOUT=local(loads, 1, 1) * spatial(1, LANES, 1) * local(1, 1, LOAD_BYTES),
        TARGET=spatial(LANES, *[1] * len(shape)) * local(1, *permuted_shape[1:]),
    )
    packed = torch.from_numpy(rng.integers(0, 256, (loads, rows, LOAD_BYTES), dtype=np.uint8))
    out = torch.full((rows, loads * LOAD_BYTES), 0xAB, dtype=torch.uint8)  # poison: every byte is written
    stored = out.to(device)
    regroup[(1,)](packed.to(device), stored, **constexprs)
    strings = packed.numpy().transpose(1, 0, 2).reshape(rows, -1)
    return stored.cpu().numpy(), expected_bytes(strings, dtype.nbits, shape, order), constexprs


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_permute_of_narrow_elements_moves_their_bits_as_numpy_does(dtype, device):
    rows = 29 if dtype.nbits % 2 else LANES  # ragged: three lanes past the end
    actual, expected, constexprs = run_regroup(dtype, rows, dtype.nbits * 7 + dtype.is_signed, device)
    np.testing.assert_array_equal(actual, expected)
    # the gather went through words: no gather of the narrow dtype is left in the thread program
    packed = torch.zeros(constexprs["LAYOUT"].shape, dtype=torch.uint8)
    program = str(regroup.thread_ir(packed, torch.zeros(LANES, 1, dtype=torch.uint8), **constexprs))
    gathers = [line for line in program.splitlines() if "gather([" in line]
    assert not [line for line in gathers if f"vector<{dtype}," in line.split("=")[0]]


def reference_word(lengths, bits, picks, word) -> np.ndarray:
    """The source bit index of each bit of result word ``word`` (numpy: element bits laid out in a row)."""
    offsets = np.cumsum([0, *lengths[:-1]]) * bits
    positions = np.array([offsets[source] + element * bits for source, element in picks])
    per_bit = (positions[:, None] + np.arange(bits)).reshape(-1)
    return per_bit[word * 32 : (word + 1) * 32]


@pytest.mark.parametrize("bits", range(1, 9))
def test_the_segments_of_a_word_cover_its_bits_from_their_sources(bits):
    rng = np.random.default_rng(100 + bits)
    lengths = [32 // math.gcd(bits, 32) * int(rng.integers(1, 3)) for _ in range(3)]
    row = [(source, element) for source, length in enumerate(lengths) for element in range(length)]
    count = 32 // math.gcd(bits, 32) * 2
    # runs of consecutive elements (what permutes of tiles make), from random places
    picks = []
    while len(picks) < count:
        start, run = int(rng.integers(len(row))), int(rng.integers(1, 9))
        picks.extend(row[start : start + run])
    picks = picks[:count]
    offsets = np.cumsum([0, *lengths[:-1]]) * bits
    for word in range(count * bits // 32):
        covered = np.full(32, -1)
        for segment in segments_of_word(lengths, bits, picks, word):
            assert segment.length > 0 and segment.destination + segment.length <= 32
            start = offsets[segment.source] + segment.bit
            covered[segment.destination : segment.destination + segment.length] = start + np.arange(
                segment.length
            )
        np.testing.assert_array_equal(covered, reference_word(lengths, bits, picks, word))


@tv.kernel(num_warps=1)
def widen(packed: tv.Tensor[tv.uint8, 3], out: tv.Tensor[tv.float16, 2], CODE: tv.constexpr,
          LAYOUT: tv.constexpr):  # fmt: skip
    """Each lane's strings viewed as ``CODE`` codes and cast to float16 (the quantized GEMM's weights)."""
    window = tv.load_global(packed, offsets=[0, 0, 0], shape=list(LAYOUT.shape), layout=LAYOUT)
    count = LAYOUT.shape[0] * LOAD_BYTES * 8 // CODE.nbits
    values = tv.cast(tv.view(tv.permute(window, [1, 0, 2]), CODE, [LANES, count]), tv.float16)
    tv.store_global(out, values, offsets=[0, 0])


def widen_layout(dtype: DType) -> tuple:
    """The window of a lane's strings for ``dtype`` (as many loads as bits), and the codes a lane holds."""
    loads = dtype.nbits
    return local(loads, 1, 1) * spatial(1, LANES, 1) * local(1, 1, LOAD_BYTES), LOAD_BYTES * 8


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [tv.int3, tv.uint5, tv.int7, tv.float6_e2m3], ids=str)
def test_odd_codes_of_loads_put_together_widen_to_their_values(dtype, device):
    rng = np.random.default_rng(dtype.nbits)
    layout, count = widen_layout(dtype)
    rows = 27
    packed = torch.from_numpy(rng.integers(0, 256, (dtype.nbits, rows, LOAD_BYTES), dtype=np.uint8))
    out = torch.full((rows, count), float("nan"), dtype=torch.float16, device=device)
    widen[(1,)](packed.to(device), out, CODE=dtype, LAYOUT=layout)
    strings = packed.numpy().transpose(1, 0, 2).reshape(rows, -1)
    fields = np.unpackbits(strings, axis=1, bitorder="little").reshape(rows, count, dtype.nbits)
    codes = (fields.astype(np.uint64) << np.arange(dtype.nbits, dtype=np.uint64)).sum(axis=-1)
    expected = decode(codes.reshape(-1), dtype).reshape(rows, count)  # float64: every value is a float16
    np.testing.assert_array_equal(out.cpu().numpy().astype(np.float64), expected)


@pytest.mark.parametrize("dtype", [tv.int3, tv.int5, tv.int7], ids=str)
def test_loads_put_together_for_odd_widths_need_no_byte_moves_in_ptx(dtype):
    # An odd number of predicated 16-byte loads was once a shuffle that LLVM sank into the last load's
    # branch, whose phi of bytes the NVPTX back end split into one prmt a byte and rebuilt: the codes now
    # reach the cast as the loaded words, and the cast's own prmt (one a pair of codes) is all there is.
    layout, count = widen_layout(dtype)
    packed = torch.zeros((dtype.nbits, LANES, LOAD_BYTES), dtype=torch.uint8)
    ptx = widen.ptx(packed, torch.zeros(LANES, count, dtype=torch.float16), CODE=dtype, LAYOUT=layout)
    assert ptx.count("prmt.b32") <= count // 2
    assert "cvt.u16.u32" not in ptx  # no byte of a load moved through a 16-bit register

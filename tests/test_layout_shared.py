"""Shared layouts: strides, XOR swizzles, and bank conflicts checked against a brute-force bank count."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilevm.layout import (
    LayoutError,
    SharedLayout,
    Swizzle,
    bank_conflicts,
    choose_swizzle,
    parse,
    shared,
    warp_accesses,
)
from tilevm.layout.swizzle import extra_wavefronts


def brute_force_extra_wavefronts(byte_addresses, access_bytes):
    """Independent bank count: 32 banks of 4 bytes, phases of 128 bytes, same word served once."""
    lanes_per_phase = 128 // access_bytes
    extra = 0
    for start in range(0, len(byte_addresses), lanes_per_phase):
        words_of_bank = {bank: set() for bank in range(32)}
        for address in byte_addresses[start : start + lanes_per_phase]:
            for word in range(address // 4, (address + access_bytes) // 4):
                words_of_bank[word % 32].add(word)
        extra += max(len(words) for words in words_of_bank.values()) - 1
    return extra


def brute_force_tile_conflicts(layout, dtype_bits, warps):
    """Conflicts of every warp request, from ``layout.offset`` one coordinate at a time."""
    return sum(
        brute_force_extra_wavefronts([layout.offset(coord) * dtype_bits // 8 for coord in warp], 16)
        for warp in warps
    )


def swizzle_reference(offset, bits, base, shift):
    """CUTLASS Swizzle<B, M, S> one bit at a time: bit M+S+j is XORed into bit M+j."""
    for j in range(bits):
        source = (offset >> (base + shift + j)) & 1
        offset ^= source << (base + j)
    return offset


def test_row_and_column_major_tables():
    np.testing.assert_array_equal(SharedLayout.row_major(3, 4, 5).table(), np.arange(60).reshape(3, 4, 5))
    np.testing.assert_array_equal(
        SharedLayout.column_major(3, 4, 5).table(), np.arange(60).reshape(3, 4, 5, order="F")
    )
    padded = shared((4, 8), strides=(10, 1))
    assert padded.size == 38
    assert padded.table()[3, 7] == 37


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3), st.integers(0, 4), st.integers(0, 3), st.integers(0, 2000))
def test_swizzle_matches_bitwise_reference(bits, base, extra_shift, offset):
    swizzle = Swizzle(bits, base, bits + extra_shift)
    assert swizzle(offset) == swizzle_reference(offset, bits, base, bits + extra_shift)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 8).map(lambda r: 8 * r),
    log_cols=st.integers(3, 7),
    bits=st.integers(0, 3),
    base=st.integers(0, 3),
    extra_shift=st.integers(0, 3),
)
def test_swizzled_layouts_are_injective_within_their_size(rows, log_cols, bits, base, extra_shift):
    plain = SharedLayout.row_major(rows, 1 << log_cols)
    layout = plain.swizzle(bits, base, bits + extra_shift)
    offsets = layout.table().ravel().tolist()
    assert len(set(offsets)) == len(offsets)
    assert layout.size == max(offsets) + 1
    if plain.size % (1 << (base + bits)) == 0:
        assert sorted(offsets) == list(range(plain.size))  # whole blocks: a permutation
    assert parse(str(layout)) == layout


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2), st.integers(0, 4000), st.integers(0, 8))
def test_adding_a_multiple_of_the_period_commutes_with_the_swizzle(bits, base, extra_shift, offset, k):
    swizzle = Swizzle(bits, base, bits + extra_shift)
    assert swizzle.period == 2 ** (base + bits + extra_shift + bits)
    shifted = offset + k * swizzle.period
    assert swizzle_reference(shifted, bits, base, bits + extra_shift) == swizzle(offset) + k * swizzle.period


def window_reference(parent_table, offsets, shape, dims):
    """The parent's offsets at ``offsets + c`` for every coordinate ``c`` of the window, one at a time."""
    window = np.empty(shape, dtype=np.int64)
    for coord in np.ndindex(*shape):
        full = list(offsets)
        for dim, value in zip(dims, coord):
            full[dim] += value
        window[coord] = parent_table[tuple(full)]
    return window


@st.composite
def swizzled_windows(draw):
    """A swizzled row-major parent of rank 2 or 3 and a window of it: (parent, offsets, shape, dims)."""
    rank = draw(st.integers(2, 3))
    parent_shape = tuple(draw(st.sampled_from([2, 4, 8, 16, 32, 64])) for _ in range(rank))
    parent = SharedLayout.row_major(*parent_shape)
    bits, base = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    parent = parent.swizzle(bits, base, bits + draw(st.integers(0, 3)))
    dims = tuple(sorted(draw(st.sets(st.integers(0, rank - 1), min_size=1, max_size=rank))))
    shape, offsets = [], []
    for dim, size in enumerate(parent_shape):
        extent = draw(st.integers(1, size)) if dim in dims else 1
        if dim in dims:
            shape.append(extent)
        offsets.append(draw(st.integers(0, size - extent)))
    return parent, tuple(offsets), tuple(shape), dims


@settings(max_examples=80, deadline=None)
@given(swizzled_windows())
def test_a_window_of_a_swizzled_layout_keeps_every_offset(case):
    parent, offsets, shape, dims = case
    window = parent.slice(offsets, shape, dims)
    expected = window_reference(parent.table(), offsets, shape, dims)
    np.testing.assert_array_equal(window.table(), expected)
    assert [window.offset(coord) for coord in np.ndindex(*shape)] == expected.ravel().tolist()
    assert parse(str(window)) == window


@settings(max_examples=80, deadline=None)
@given(swizzled_windows())
def test_a_window_at_a_runtime_base_is_the_static_window_shifted_before_swizzling(case):
    # How the IR places a slice whose offsets are runtime values: the static window at offset zero along
    # those dimensions, shifted by their linear offset before the swizzle.
    parent, offsets, shape, dims = case
    runtime_dims = [dim for dim in range(parent.rank) if offsets[dim] % 2]  # an arbitrary split
    static_offsets = tuple(0 if dim in runtime_dims else offset for dim, offset in enumerate(offsets))
    runtime_base = sum(offsets[dim] * parent.strides[dim] for dim in runtime_dims)
    shifted = parent.slice(static_offsets, shape, dims).shifted_by(runtime_base)
    np.testing.assert_array_equal(shifted.table(), window_reference(parent.table(), offsets, shape, dims))


def test_the_kth_column_block_of_a_128_byte_swizzled_tile():
    # The [32, 16] sub-tile k of a [32, 64] f16 tile: its origin 16 * k is not a multiple of the period
    # (512), so its offsets are not those of sub-tile 0 moved by 16 * k.
    parent = choose_swizzle((32, 64), 16, ("cp_async_16B_rows", "ldmatrix"))
    assert parent.swizzling == Swizzle(3, 3, 3)
    first = parent.slice((0, 0), (32, 16), (0, 1))
    for k in range(4):
        window = parent.slice((0, 16 * k), (32, 16), (0, 1))
        origin = f", origin={16 * k}" if k else ""
        assert str(window) == f"shared((32, 16), strides=(64, 1){origin}).swizzle(3, 3, 3)"
        assert window == first.shifted_by(16 * k)
        np.testing.assert_array_equal(window.table(), parent.table()[:, 16 * k : 16 * k + 16])
        if k:
            assert not np.array_equal(window.table(), first.table() + 16 * k)


def test_plain_row_major_has_ldmatrix_conflicts_on_a_64_wide_f16_tile():
    plain = SharedLayout.row_major(16, 64)
    warps = warp_accesses((16, 64), 16, "ldmatrix")
    computed = [bank_conflicts(plain, 16, warp) for warp in warps]
    # The 8 rows of one 8x8 matrix are 128 bytes apart, so all 8 sit in the same 4 banks: 8-way.
    expected = [
        brute_force_extra_wavefronts([(row * 64 + col) * 2 for row, col in warp], 16) for warp in warps
    ]
    assert computed == expected == [4 * 7] * 4


def test_cp_async_rows_are_conflict_free_unswizzled_on_a_64_wide_f16_tile():
    plain = SharedLayout.row_major(16, 64)
    warps = warp_accesses((16, 64), 16, "cp_async_16B_rows")
    assert [bank_conflicts(plain, 16, warp) for warp in warps] == [0] * 4


@pytest.mark.parametrize(
    ("shape", "dtype_bits", "swizzle"),
    [
        ((16, 64), 16, Swizzle(3, 3, 3)),  # 128-byte rows: the classic sm80 f16 pattern
        ((16, 32), 16, Swizzle(2, 3, 3)),  # 64-byte rows: two rows share a 128-byte line
        ((32, 128), 8, Swizzle(3, 4, 3)),  # int8 rows of 128 bytes: units of 16 elements
        ((32, 256), 4, Swizzle(3, 5, 3)),  # int4 rows of 128 bytes: units of 32 elements
        ((16, 8), 16, None),  # one 16-byte unit per row: 8 consecutive rows already fill 32 banks
    ],
)
def test_choose_swizzle_for_ldmatrix(shape, dtype_bits, swizzle):
    layout = choose_swizzle(shape, dtype_bits, "ldmatrix")
    assert layout.swizzling == swizzle
    warps = warp_accesses(shape, dtype_bits, "ldmatrix")
    assert brute_force_tile_conflicts(layout, dtype_bits, warps) == 0
    assert (
        brute_force_tile_conflicts(SharedLayout.row_major(*shape), dtype_bits, warps) > 0 or swizzle is None
    )


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 8).map(lambda r: 8 * r),
    log_units=st.integers(0, 4),
    dtype_bits=st.sampled_from([4, 8, 16, 32]),
)
def test_chosen_swizzles_are_conflict_free_bijections(rows, log_units, dtype_bits):
    shape = (rows, (128 // dtype_bits) << log_units)
    accesses = ("cp_async_16B_rows", "ldmatrix")
    layout = choose_swizzle(shape, dtype_bits, accesses)
    for access in accesses:
        warps = warp_accesses(shape, dtype_bits, access)
        assert sum(bank_conflicts(layout, dtype_bits, warp) for warp in warps) == 0
        assert brute_force_tile_conflicts(layout, dtype_bits, warps) == 0
    assert sorted(layout.table().ravel().tolist()) == list(range(layout.size))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 255), min_size=1, max_size=32),
    st.sampled_from([4, 8, 16]),
)
def test_bank_conflicts_match_brute_force_for_any_addresses(units, access_bytes):
    # A 1-D layout of 4-byte elements; each access starts at a multiple of its size, so it is aligned.
    elements = access_bytes // 4
    layout = SharedLayout.row_major(256 * elements)
    accesses = [(unit * elements,) for unit in units]
    expected = brute_force_extra_wavefronts([unit * access_bytes for unit in units], access_bytes)
    assert bank_conflicts(layout, 32, accesses, access_bytes) == expected


def test_broadcast_of_one_word_is_not_a_conflict():
    layout = SharedLayout.row_major(64)
    assert bank_conflicts(layout, 32, [(0,)] * 32, access_bytes=4) == 0
    assert bank_conflicts(layout, 32, [(0,), (32,)], access_bytes=4) == 1


def test_text_round_trip():
    layout = shared((64, 32), strides=(32, 1)).swizzle(2, 3, 3)
    assert str(layout) == "shared((64, 32), strides=(32, 1)).swizzle(2, 3, 3)"
    assert parse(str(layout)) == layout
    window = shared((16, 8), strides=(64, 1), origin=24).swizzle(3, 3, 3)
    assert str(window) == "shared((16, 8), strides=(64, 1), origin=24).swizzle(3, 3, 3)"
    assert parse(str(window)) == window == SharedLayout((16, 8), (64, 1), Swizzle(3, 3, 3), 24)
    assert parse("shared((8,))") == SharedLayout.row_major(8)
    assert str(SharedLayout.row_major(8)) == "shared((8,), strides=(1,))"


def test_errors():
    with pytest.raises(LayoutError, match="shift 1 must be at least its bits 2"):
        Swizzle(2, 3, 1)
    with pytest.raises(LayoutError, match="already swizzled"):
        parse("shared((16, 64)).swizzle(3, 3, 3).swizzle(1, 0, 1)")
    with pytest.raises(LayoutError, match="has no layout method 'transpose'"):
        parse("shared((8, 8)).transpose()")
    with pytest.raises(LayoutError, match=r"coordinate \(8, 0\) is outside shape \(8, 8\)"):
        SharedLayout.row_major(8, 8).offset((8, 0))
    with pytest.raises(LayoutError, match="3-bit elements do not tile 16 bytes"):
        choose_swizzle((8, 128), 3, "ldmatrix")
    with pytest.raises(LayoutError, match="unknown access pattern 'tma'"):
        choose_swizzle((8, 64), 16, "tma")
    with pytest.raises(LayoutError, match="ldmatrix reads 8-row matrices"):
        warp_accesses((12, 64), 16, "ldmatrix")
    with pytest.raises(LayoutError, match="not contiguous in the layout"):
        bank_conflicts(SharedLayout.row_major(8, 64).swizzle(1, 0, 6), 16, [(1, 0)])
    with pytest.raises(LayoutError, match="not aligned to 16 bytes"):
        bank_conflicts(SharedLayout.row_major(8, 64), 16, [(0, 4)])
    with pytest.raises(LayoutError, match="strides and origin non-negative"):
        shared((4,), origin=-1)
    with pytest.raises(LayoutError, match=r"origin must be an int, got 1\.5"):
        shared((4,), origin=1.5)
    layout = SharedLayout.row_major(8, 16, 4)
    with pytest.raises(LayoutError, match="offset 6 with extent 4 is outside dimension 0 of size 8"):
        layout.slice((6, 0, 0), (4, 16), (0, 1))
    with pytest.raises(LayoutError, match="offset 4 with extent 1 is outside dimension 2 of size 4"):
        layout.slice((0, 0, 4), (4, 16), (0, 1))
    with pytest.raises(LayoutError, match="needs 3 offsets and increasing dims"):
        layout.slice((0, 0), (4, 16), (0, 1))
    with pytest.raises(LayoutError, match="needs 3 offsets and increasing dims"):
        layout.slice((0, 0, 0), (16, 4), (1, 0))
    with pytest.raises(LayoutError, match="slice dim 3 is not a dimension of a rank-3 layout"):
        layout.slice((0, 0, 0), (4,), (3,))
    with pytest.raises(LayoutError, match="a warp has 32 threads"):
        bank_conflicts(SharedLayout.row_major(8, 64), 16, [(0, 0)] * 33)


@pytest.mark.parametrize("access_bytes", [4, 8, 16])
def test_a_stack_of_requests_counts_each_as_the_brute_force_does(access_bytes):
    """``extra_wavefronts`` counts many requests at once (the swizzle chooser's way); each must be what the
    brute-force count gives, whatever its lanes (1 to 32, so the last phase may be partial)."""
    generator = np.random.default_rng(access_bytes)
    for lanes in (1, 5, 8, 13, 16, 31, 32):
        # aligned addresses in a small window, so that banks collide often
        addresses = generator.integers(0, 64, size=(20, lanes)) * access_bytes
        expected = [brute_force_extra_wavefronts(row.tolist(), access_bytes) for row in addresses]
        assert extra_wavefronts(addresses, access_bytes).tolist() == expected
    assert extra_wavefronts(np.zeros((3, 0), dtype=np.int64), access_bytes).tolist() == [0, 0, 0]

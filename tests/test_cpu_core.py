"""The SIMT interpreter on hand-written Thread IR: expressions (scalar and vector arithmetic, casts, bitcast,
pack, element, gather, select), registers and control flow (uniform and divergent), global loads and stores
(sub-byte included, predicated), each checked against numpy or torch computed here."""

from __future__ import annotations

import numpy as np
import torch

from tests.cpu_programs import run

HEADER = "kernel k({params}) num_threads={threads} {{"


def _kernel(params: str, threads: int, body: str) -> str:
    return HEADER.format(params=params, threads=threads) + "\n" + body.strip("\n") + "\n}"


def test_vector_arithmetic_on_float16_pairs_and_a_ragged_tail():
    # 3 blocks of 32 threads, 8 halves each, over 700 elements: the tail is predicated off.
    rng = np.random.default_rng(1)
    n = 700
    x = torch.from_numpy(rng.standard_normal(768).astype(np.float16))
    y = torch.from_numpy(rng.standard_normal(768).astype(np.float16))
    out = torch.full((768,), float("nan"), dtype=torch.float32)
    text = _kernel(
        "%x: ptr<float16>, %y: ptr<float16>, %out: ptr<float32>, %n: int32",
        32,
        """
  %first: int32 = let(value=((block_index(0) * 32) + thread_index()) * 8)
  %inside: bool = let(value=%first < %n)
  %a: vector<float16, 8> = load(pointer=pointer_add(%x, %first * 2), width=16, predicate=%inside)
  %b: vector<float16, 8> = load(pointer=pointer_add(%y, %first * 2), width=16, predicate=%inside)
  %s: vector<float32, 8> = let(value=cast<float32>((%a * %b) + %a))
  %lo: vector<float32, 4> = let(value=gather([%s], [0, 1, 2, 3]))
  %hi: vector<float32, 4> = let(value=gather([%s], [4, 5, 6, 7]))
  store(pointer=pointer_add(%out, %first * 4), value=%lo, predicate=%inside)
  store(pointer=pointer_add(%out, (%first * 4) + 16), value=%hi, predicate=%inside)
""",
    )
    run(text, [x, y, out, n], grid=(3,))
    product = (x.to(torch.float32) * y.to(torch.float32)).to(torch.float16)  # f16 mul rounds once
    expected = (product.to(torch.float32) + x.to(torch.float32)).to(torch.float16).to(torch.float32)
    covered = 704  # threads whose first element is below n write all 8
    assert torch.equal(out[:covered], expected[:covered])
    assert torch.isnan(out[covered:]).all()


def test_integer_scalars_wrap_divide_and_shift_as_the_ir_defines():
    rng = np.random.default_rng(2)
    values = torch.from_numpy(rng.integers(-(2**31), 2**31, size=64, dtype=np.int64).astype(np.int32))
    out = torch.full((64, 4), -7, dtype=torch.int32)
    text = _kernel(
        "%x: ptr<int32>, %out: ptr<int32>",
        64,
        """
  %t: int32 = let(value=thread_index())
  %v: int32 = load(pointer=pointer_add(%x, %t * 4), width=4)
  %row: ptr<int32> = let(value=pointer_add(%out, %t * 16))
  store(pointer=%row, value=(%v * 3) + 12345)
  store(pointer=pointer_add(%row, 4), value=%v // (%t - 31))
  store(pointer=pointer_add(%row, 8), value=%v % 7)
  store(pointer=pointer_add(%row, 12), value=(%v >> (%t % 33)) ^ (%v << 3))
""",
    )
    # t - 31 is zero for thread 31: that thread must be masked off, so run it as a divergent if.
    text = text.replace(
        "  store(pointer=pointer_add(%row, 4), value=%v // (%t - 31))",
        "  if %t != 31 {\n    store(pointer=pointer_add(%row, 4), value=%v // (%t - 31))\n  }",
    )
    run(text, [values, out])
    v = values.numpy().astype(np.int64)
    t = np.arange(64)
    wrap = lambda a: ((np.asarray(a, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)  # noqa: E731
    assert np.array_equal(out[:, 0].numpy(), wrap(v * 3 + 12345))
    divided = np.where(t == 31, -7, v // np.where(t == 31, 1, t - 31))
    assert np.array_equal(out[:, 1].numpy(), divided)
    assert np.array_equal(out[:, 2].numpy(), v % 7)
    amount = t % 33
    shifted = np.where(amount >= 32, np.where(v < 0, -1, 0), v >> np.minimum(amount, 31))
    assert np.array_equal(out[:, 3].numpy(), wrap(shifted ^ wrap(v << 3)))


def test_sub_byte_loads_casts_and_stores():
    # Each thread loads 4 bytes of int4 (8 nibbles), widens them to int8 and stores them, then stores the
    # nibbles back reversed through an int4 store of 4 bytes.
    rng = np.random.default_rng(3)
    packed = torch.from_numpy(rng.integers(0, 256, size=128, dtype=np.uint8))
    wide = torch.full((256,), 99, dtype=torch.int8)
    reversed_nibbles = torch.zeros(128, dtype=torch.uint8)
    text = _kernel(
        "%x: ptr<int4>, %wide: ptr<int8>, %back: ptr<int4>",
        32,
        """
  %t: int32 = let(value=thread_index())
  %v: vector<int4, 8> = load(pointer=pointer_add(%x, %t * 4), width=4)
  store(pointer=pointer_add(%wide, %t * 8), value=cast<int8>(%v))
  store(pointer=pointer_add(%back, %t * 4), value=gather([%v], [7, 6, 5, 4, 3, 2, 1, 0]))
""",
    )
    run(text, [packed.view(torch.uint8), wide, reversed_nibbles])
    nibbles = np.stack([packed.numpy() & 0xF, packed.numpy() >> 4], axis=1).reshape(-1).astype(np.int16)
    assert np.array_equal(wide.numpy(), np.where(nibbles >= 8, nibbles - 16, nibbles))
    flipped = nibbles.reshape(32, 8)[:, ::-1].reshape(-1)
    assert np.array_equal(reversed_nibbles.numpy(), (flipped[0::2] | (flipped[1::2] << 4)).astype(np.uint8))


def test_bitcast_pack_element_and_select_move_bits():
    # A NaN with a payload survives a bitcast round trip; pack and element build and split registers.
    words = np.array([0x7E013C00, 0xFC00BC00, 0x00010002, 0x80007BFF] * 8, dtype=np.uint32)
    source = torch.from_numpy(words.view(np.int32).copy())
    out = torch.zeros(32 * 3, dtype=torch.int32)
    text = _kernel(
        "%x: ptr<uint32>, %out: ptr<uint32>",
        32,
        """
  %t: int32 = let(value=thread_index())
  %w: uint32 = load(pointer=pointer_add(%x, %t * 4), width=4)
  %h: vector<float16, 2> = let(value=bitcast<float16, 2>(%w))
  %swapped: vector<float16, 2> = let(value=pack([element(%h, 1), element(%h, 0)]))
  %row: ptr<uint32> = let(value=pointer_add(%out, %t * 12))
  store(pointer=%row, value=bitcast<uint32, 1>(%swapped))
  %bigger: vector<float16, 2> = let(value=select(%h > neg(%h), %h, neg(%h)))
  store(pointer=pointer_add(%row, 4), value=bitcast<uint32, 1>(%bigger))
  %whole: vector<float16, 2> = let(value=select((%t % 2) == 0, %h, %swapped))
  store(pointer=pointer_add(%row, 8), value=bitcast<uint32, 1>(%whole))
""",
    )
    run(text, [source, out])
    got = out.numpy().view(np.uint32).reshape(32, 3)
    swapped = (words >> 16) | ((words & 0xFFFF) << 16)
    assert np.array_equal(got[:, 0], swapped)
    halves = words.view(np.float16).reshape(32, 2)
    magnitude = np.where(halves > -halves, halves, -halves).astype(np.float16)
    # comparisons with NaN are false: select picks -h, whose NaN is the canonical one after neg's arithmetic
    negated_nan = np.float16(np.nan)
    magnitude = np.where(np.isnan(halves), negated_nan, magnitude)
    assert np.array_equal(got[:, 1], magnitude.view(np.uint32).reshape(-1))
    assert np.array_equal(got[:, 2], np.where(np.arange(32) % 2 == 0, words, swapped))


def test_for_loops_sum_and_divergent_if_sets_per_thread():
    rng = np.random.default_rng(4)
    data = torch.from_numpy(rng.integers(-50, 50, size=(64, 10), dtype=np.int64).astype(np.int32))
    out = torch.full((64,), 12345, dtype=torch.int32)
    text = _kernel(
        "%x: ptr<int32>, %out: ptr<int32>, %n: int32",
        64,
        """
  %t: int32 = let(value=thread_index())
  %sum: int32 = declare(init=0)
  for %i: int32 in range(0, %n, 1) {
    %v: int32 = load(pointer=pointer_add(%x, ((%t * %n) + %i) * 4), width=4)
    if %v > %t {
      set(variable=%sum, value=%sum + %v)
    } else {
      set(variable=%sum, value=%sum - 1)
    }
  }
  store(pointer=pointer_add(%out, %t * 4), value=%sum)
""",
    )
    run(text, [data, out, 10])
    values = data.numpy()
    expected = np.where(values > np.arange(64)[:, None], values, -1).sum(axis=1)
    assert np.array_equal(out.numpy(), expected)


def test_divergent_while_and_for_with_per_thread_trip_counts():
    # Collatz steps of 1 + t (a while whose trip count differs per thread) and a for from t to 2t step 3.
    out = torch.full((2, 48), -1, dtype=torch.int32)
    text = _kernel(
        "%out: ptr<int32>",
        48,
        """
  %t: int32 = let(value=thread_index())
  %x: int32 = declare(init=%t + 1)
  %steps: int32 = declare(init=0)
  while %x != 1 {
    set(variable=%x, value=select((%x % 2) == 0, %x // 2, (3 * %x) + 1))
    set(variable=%steps, value=%steps + 1)
  }
  store(pointer=pointer_add(%out, %t * 4), value=%steps)
  %count: int32 = declare(init=0)
  for %i: int32 in range(%t, %t * 2, 3) {
    set(variable=%count, value=%count + %i)
  }
  store(pointer=pointer_add(%out, (%t + 48) * 4), value=%count)
""",
    )
    run(text, [out])

    def collatz(x: int) -> int:
        steps = 0
        while x != 1:
            x, steps = (x // 2 if x % 2 == 0 else 3 * x + 1), steps + 1
        return steps

    assert out[0].tolist() == [collatz(t + 1) for t in range(48)]
    assert out[1].tolist() == [sum(range(t, 2 * t, 3)) for t in range(48)]


def test_grids_of_three_axes_and_block_batches():
    # 5 x 3 x 2 blocks of 64 threads write their coordinates: batching several blocks at once keeps each
    # block's indices.
    out = torch.full((2, 3, 5, 64, 3), -1, dtype=torch.int16)
    text = _kernel(
        "%out: ptr<int16>",
        64,
        """
  %plane: int32 = let(value=(block_index(2) * grid_size(1)) + block_index(1))
  %block: int32 = let(value=(%plane * grid_size(0)) + block_index(0))
  %row: ptr<int16> = let(value=pointer_add(%out, ((%block * 64) + thread_index()) * 6))
  store(pointer=%row, value=cast<int16>(block_index(0) * thread_index()))
  store(pointer=pointer_add(%row, 2), value=cast<int16>(block_index(1)))
  store(pointer=pointer_add(%row, 4), value=cast<int16>(block_index(2)))
""",
    )
    run(text, [out], grid=(5, 3, 2))
    z, y, x, t = np.meshgrid(np.arange(2), np.arange(3), np.arange(5), np.arange(64), indexing="ij")
    assert np.array_equal(out[..., 0].numpy(), x * t)
    assert np.array_equal(out[..., 1].numpy(), y)
    assert np.array_equal(out[..., 2].numpy(), z)


def test_one_byte_loads_and_stores_of_bytes_nibbles_and_bools():
    # A byte is a scalar uint8, two int4 nibbles or eight bools: each is loaded, changed and stored back.
    rng = np.random.default_rng(6)
    data = torch.from_numpy(rng.integers(0, 256, size=3 * 40, dtype=np.uint8))
    out = torch.zeros(3 * 40, dtype=torch.uint8)
    text = _kernel(
        "%x: ptr<uint8>, %nibbles: ptr<int4>, %flags: ptr<bool>, %out: ptr<uint8>",
        40,
        """
  %t: int32 = let(value=thread_index())
  %byte: uint8 = load(pointer=pointer_add(%x, %t), width=1)
  store(pointer=pointer_add(%out, %t), value=%byte + 1:uint8)
  %pair: vector<int4, 2> = load(pointer=pointer_add(%nibbles, %t + 40), width=1)
  store(pointer=pointer_add(%nibbles, %t + 40), value=gather([%pair], [1, 0]))
  %bits: vector<bool, 8> = load(pointer=pointer_add(%flags, %t + 80), width=1)
  store(pointer=pointer_add(%flags, %t + 80), value=select(%bits, gather([false], [0, 0, 0, 0, 0, 0, 0, 0]), \
gather([true], [0, 0, 0, 0, 0, 0, 0, 0])))
""",
    )
    expected = data.numpy().copy()
    run(text, [data, data, data, out])
    assert np.array_equal(out.numpy()[:40], (expected[:40] + 1).astype(np.uint8))
    swapped = ((expected[40:80] & 0xF) << 4) | (expected[40:80] >> 4)
    assert np.array_equal(data.numpy()[40:80], swapped.astype(np.uint8))
    assert np.array_equal(data.numpy()[80:], ~expected[80:])


def test_a_load_every_thread_makes_from_one_address_gives_every_thread_the_value():
    # A uniform address (a scalar parameter's element) is read once; the value reaches all threads of
    # every block, in one and in several batches, and for every width.
    data = torch.from_numpy(np.arange(16, dtype=np.uint8) * 17)
    out = torch.full((3, 64, 32), 7, dtype=torch.uint8)
    text = _kernel(
        "%x: ptr<uint8>, %out: ptr<uint8>",
        64,
        """
  %row: ptr<uint8> = let(value=pointer_add(%out, ((block_index(0) * 64) + thread_index()) * 32))
  %one: uint8 = load(pointer=pointer_add(%x, 3), width=1)
  store(pointer=%row, value=%one)
  %two: vector<uint8, 2> = load(pointer=pointer_add(%x, 2), width=2)
  store(pointer=pointer_add(%row, 2), value=%two)
  %four: vector<uint8, 4> = load(pointer=pointer_add(%x, 4), width=4)
  store(pointer=pointer_add(%row, 4), value=%four)
  %eight: vector<uint8, 8> = load(pointer=pointer_add(%x, 8), width=8)
  store(pointer=pointer_add(%row, 8), value=%eight)
  %sixteen: vector<uint8, 16> = load(pointer=%x, width=16)
  store(pointer=pointer_add(%row, 16), value=%sixteen)
""",
    )
    run(text, [data, out], grid=(3,))
    bytes_ = data.numpy()
    expected = np.concatenate([bytes_[3:4], [7], bytes_[2:4], bytes_[4:8], bytes_[8:16], bytes_])
    assert np.array_equal(out.numpy(), np.broadcast_to(expected, (3, 64, 32)))

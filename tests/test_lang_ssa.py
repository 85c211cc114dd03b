"""Scalars bound once are immutable ``let``s; only names that a runtime loop or branch reassigns are declared
and set. Checked on the printed IR, and the results against the same function run by Python."""

import re
from collections import Counter

import torch

import tilevm as tv
from tilevm import ir

SLOTS = 10


@tv.func
def bump_in_loop(total, n):
    for _ in range(n):
        total = total + 1
    return total


def scalars_in_python(row: int, n: int, flag: int) -> list[int]:
    """The kernel below, line for line, on Python ints."""
    base = row * 10 + n
    doubled = base * 2
    shifted = doubled + 1
    shifted = shifted * 3
    kept = base
    count = base
    for i in range(n):
        step = i * 2
        count = count + step
    if flag > 0:
        doubled = doubled - 1
    bumped = base + n
    pair = (base, kept)
    acc = saved = base
    for _ in range(n):
        base = base + 1
        acc = acc + 1
    return [*pair, base, doubled, shifted, kept, count, bumped, saved, acc]


@tv.kernel(num_warps=1)
def scalars(out: tv.Tensor[tv.int32, 1], n: int, flag: int):
    row = tv.block_idx()
    base = row * 10 + n
    doubled = base * 2
    shifted = doubled + 1
    shifted = shifted * 3
    kept = base
    count = base
    for i in range(n):
        step = i * 2
        count = count + step
    if flag > 0:
        doubled = doubled - 1
    bumped = bump_in_loop(base, n)  # the callee reassigns its parameter: the caller's base stays
    pair = (base, kept)  # the loop below reassigns base: the tuple keeps the old value
    acc = tv.register_tensor(tv.int32, [1], init=base)
    saved = acc  # the same for a tile
    for _ in range(n):
        base = base + 1
        acc = acc + 1
    for slot, value in enumerate((*pair, base, doubled, shifted, kept, count, bumped)):
        tv.store_global(out, tv.register_tensor(tv.int32, [1], init=value), offsets=[row * SLOTS + slot])
    tv.store_global(out, saved, offsets=[row * SLOTS + 8])
    tv.store_global(out, acc, offsets=[row * SLOTS + 9])


def bindings(text: str) -> Counter:
    """(kind, name) of every let and declare in a printed program, the name without its '.N' suffix."""
    found = re.findall(r"^\s*%(\w+?)(?:\.\d+)?: \S+ = (let|declare)\(", text, flags=re.MULTILINE)
    return Counter((kind, name) for name, kind in found)


def test_scalars_match_python():
    rows = 3
    for n, flag in [(0, 0), (4, 1), (7, -2)]:
        out = torch.full((rows * SLOTS,), -1, dtype=torch.int32)
        scalars[(rows,)](out, n, flag)
        expected = [value for row in range(rows) for value in scalars_in_python(row, n, flag)]
        assert out.tolist() == expected, (n, flag)


def test_only_names_reassigned_in_a_runtime_region_are_declared():
    text = ir.print_program(scalars.ir(torch.zeros(SLOTS, dtype=torch.int32), 3, 1))
    assert bindings(text) == Counter({
        ("let", "row"): 1, ("let", "base"): 1, ("let", "shifted"): 2, ("let", "step"): 1,
        ("declare", "count"): 1,  # a copy: 'count = base' binds the name to base's variable
        ("declare", "doubled"): 1,  # the let that bound it, now a declare
        ("declare", "total"): 1,  # a copy: the parameter is the caller's base
        ("declare", "base"): 1,  # a copy: the tuple pair holds base's let
    })  # fmt: skip
    assert re.search(r"%count: int32 = declare\(init=%base\)", text)
    assert re.search(r"%doubled: int32 = declare\(init=%base \* 2\)", text)
    assert re.search(r"%base\.1: int32 = declare\(init=%base\)", text)
    assert re.search(r"%total: int32 = declare\(init=%base\)", text)
    sets = re.findall(r"^\s*set\(variable=%(\w+)", text, flags=re.MULTILINE)
    assert sorted(sets) == ["base", "count", "doubled", "total"]


def test_a_name_reassigned_only_outside_regions_gets_a_let_each_time():
    @tv.kernel(num_warps=1)
    def straight(out: tv.Tensor[tv.int32, 1], n: int):
        value = n + 1
        value = value * 3
        value = value - 2
        tv.store_global(out, tv.register_tensor(tv.int32, [1], init=value), offsets=[0])

    out = torch.zeros(1, dtype=torch.int32)
    straight[(1,)](out, 5)
    assert out.item() == (5 + 1) * 3 - 2
    text = ir.print_program(straight.ir(out, 5))
    assert bindings(text) == Counter({("let", "value"): 3})
    assert "%value.2: int32 = let(value=%value.1 - 2)" in text


def test_a_name_bound_to_a_loop_carried_value_keeps_it_when_the_value_is_reassigned():
    # ``current = buffer`` then ``buffer = <next>``: current keeps the old value (a software pipeline of
    # registers), for tiles and scalars, in a loop and in a loop nested in another
    @tv.kernel(num_warps=1)
    def pipelined(x: tv.Tensor, sums: tv.Tensor, previous: tv.Tensor, n: int):
        acc = tv.register_tensor(tv.float32, [32], init=0.0)
        buffer = tv.load_global(x, offsets=[0], shape=[32])
        counter = 0
        last = 0
        for _ in range(1):
            for i in range(n):
                current = buffer
                buffer = tv.load_global(x, offsets=[(i + 1) * 32], shape=[32])
                acc = acc + current
                before = counter
                counter = counter + 1
                last = before
        tv.store_global(sums, acc, offsets=[0])
        tv.store_global(previous, tv.register_tensor(tv.int32, [1], init=last), offsets=[0])

    x = torch.randn(5 * 32, generator=torch.Generator().manual_seed(3))
    sums, previous = torch.full((32,), float("nan")), torch.full((1,), -1, dtype=torch.int32)
    pipelined[(1,)](x, sums, previous, 4)
    torch.testing.assert_close(sums, x.double().reshape(5, 32)[:4].sum(dim=0).float())  # float32 sums of 4
    assert previous.tolist() == [3]


def test_a_loop_carried_value_reassigned_in_a_branch_keeps_the_update():
    # ``current = buffer`` then ``if ...: buffer = <next>``: the branch assigns the loop's own variable
    # (the update reaches the next iteration), and current keeps the old value; for tiles and scalars
    @tv.kernel(num_warps=1)
    def pipelined(x: tv.Tensor, sums: tv.Tensor, seen: tv.Tensor, n: int, skip: int):
        acc = tv.register_tensor(tv.float32, [32], init=0.0)
        buffer = tv.load_global(x, offsets=[0], shape=[32])
        index = 0
        total = 0
        for i in range(n):
            current = buffer
            current_index = index
            if i != skip:
                buffer = tv.load_global(x, offsets=[(i + 1) * 32], shape=[32])
                index = i + 1
            acc = acc + current
            total = total + current_index
        tv.store_global(sums, acc, offsets=[0])
        tv.store_global(seen, tv.register_tensor(tv.int32, [1], init=total), offsets=[0])

    x = torch.randn(7 * 32, generator=torch.Generator().manual_seed(4))
    sums, seen = torch.full((32,), float("nan")), torch.full((1,), -1, dtype=torch.int32)
    pipelined[(1,)](x, sums, seen, 6, 2)
    # iteration i adds the chunk loaded last: chunks 0, 1, 2, then 2 again (iteration 2 loads nothing), 4, 5
    chunks = [0, 1, 2, 2, 4, 5]
    torch.testing.assert_close(sums, x.double().reshape(7, 32)[chunks].sum(dim=0).float())
    assert seen.tolist() == [sum(chunks)]


def test_unpacking_in_a_loop_reads_every_value_before_it_assigns_one():
    # ``a, b = a + b, a`` in a runtime loop, as Python does it: the right side is evaluated first, so ``b``
    # gets the old ``a``, not the one just assigned; for tiles, scalars, a nested tuple and inside a branch
    @tv.kernel(num_warps=1)
    def fibonacci(x: tv.Tensor, out: tv.Tensor, n: int):
        a = tv.load_global(x, offsets=[0], shape=[32])
        b = tv.load_global(x, offsets=[32], shape=[32])
        s = 1
        t = 2
        u = 3
        for i in range(n):
            a, b = a + b, a
            s, (t, u) = t, (u, s)
            if i % 2 == 0:
                s, t = t, s
        tv.store_global(out, a, offsets=[0, 0], dims=[1])
        tv.store_global(out, b, offsets=[1, 0], dims=[1])
        for row, value in ((2, s), (3, t), (4, u)):
            tv.store_global(out, tv.register_tensor(tv.int32, [32], init=value), offsets=[row, 0], dims=[1])

    x = torch.randint(-5, 6, (64,), generator=torch.Generator().manual_seed(11)).int()
    n = 7
    a, b = x[:32].tolist(), x[32:].tolist()
    s, t, u = 1, 2, 3
    for i in range(n):
        a, b = [p + q for p, q in zip(a, b)], a
        s, (t, u) = t, (u, s)
        if i % 2 == 0:
            s, t = t, s
    out = torch.full((5, 32), -99, dtype=torch.int32)
    fibonacci[(1,)](x, out, n)
    assert out[0].tolist() == a and out[1].tolist() == b
    assert out[2:, 0].tolist() == [s, t, u] and (out[2:] == out[2:, :1]).all()


@tv.func
def _window_and_index(x, i):
    """A tile, a scalar and a nested pair (a tile and a Python int): what a prefetching loop carries."""
    return (
        tv.load_global(x, offsets=[i * 32], shape=[32]),
        i * 2,
        (tv.load_global(x, offsets=[i * 32 + 32], shape=[32]), 1),
    )


def test_a_tuple_is_carried_by_a_loop_part_by_part():
    # loads two iterations ahead held in tuples: ``operands, ahead = ahead, further`` then ``further = ...``
    # rotates them; a branch swaps the parts of another tuple; every part keeps Python's value
    @tv.kernel(num_warps=1)
    def pipelined(x: tv.Tensor, out: tv.Tensor, n: int):
        acc = tv.register_tensor(tv.float32, [32], init=0.0)
        count = 0
        ahead = _window_and_index(x, 0)
        further = _window_and_index(x, 1)
        pair = (
            tv.register_tensor(tv.float32, [32], init=1.0),
            tv.register_tensor(tv.float32, [32], init=2.0),
        )
        for i in range(n):
            operands, ahead = ahead, further
            further = _window_and_index(x, i + 2)
            tile, twice, (following, one) = operands
            acc = acc + tile * 2.0 + following
            count = count + twice + one
            if i % 3 == 0:
                pair = (pair[1], pair[0] + acc)
        tv.store_global(out, acc, offsets=[0, 0], dims=[1])
        tv.store_global(out, pair[0], offsets=[1, 0], dims=[1])
        tv.store_global(out, pair[1], offsets=[2, 0], dims=[1])
        total = tv.register_tensor(tv.float32, [32], init=tv.cast(count, tv.float32))
        tv.store_global(out, total, offsets=[3, 0], dims=[1])

    # small integers: every sum is exact in float32
    x = torch.randint(-8, 9, (12 * 32,), generator=torch.Generator().manual_seed(12)).float()
    rows, n = x.view(12, 32), 7
    acc, count, pair = torch.zeros(32), 0, (torch.full((32,), 1.0), torch.full((32,), 2.0))
    for i in range(n):
        acc = acc + rows[i] * 2 + rows[i + 1]
        count += 2 * i + 1
        if i % 3 == 0:
            pair = (pair[1], pair[0] + acc)
    out = torch.full((4, 32), float("nan"))
    pipelined[(1,)](x, out, n)
    assert torch.equal(out[0], acc) and torch.equal(out[1], pair[0]) and torch.equal(out[2], pair[1])
    assert torch.equal(out[3], torch.full((32,), float(count)))

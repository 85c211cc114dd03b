"""plan_shared_memory: offsets by liveness (checked by the verifier's independent plan rules and by hand),
alignment, and the swizzle it picks (checked with the bank-conflict counter on the access patterns of
``tilevm.layout.warp_accesses``)."""

import dataclasses

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tilevm as tv
from tilevm.dtypes import float16, float32, int4, int64, uint8
from tilevm.ir import AllocShared, Const, FreeShared, ProgramBuilder, SliceShared, Sync, verify
from tilevm.ir.rewrite import walk_instructions
from tilevm.layout import SharedLayout, bank_conflicts, mma_fragments, spatial, warp_accesses
from tilevm.passes.plan_shared_memory import plan_shared_memory


def allocations(program):
    return {
        item.output.name: item for item in walk_instructions(program.body) if isinstance(item, AllocShared)
    }


def allocate(builder, name, shape, dtype=float16, layout=None):
    return builder.emit_output(AllocShared, name, layout, dtype=dtype, shape=shape)


def test_freed_and_finished_tiles_give_their_bytes_to_later_ones():
    builder = ProgramBuilder("reuse", num_threads=32)
    first = allocate(builder, "first", (128,))  # 256 bytes
    allocate(builder, "kept", (8, 8), float32)  # 256 bytes, live to the end
    builder.emit(FreeShared(tensor=first))
    with builder.for_range("i", Const(0), Const(4), Const(1)):
        in_loop = allocate(builder, "in_loop", (64,))  # 128 bytes: first's place
        allocate(builder, "unfreed", (24,))  # lives to the end of the loop body
        builder.emit(FreeShared(tensor=in_loop))
        allocate(builder, "after_free", (8,))  # in_loop's place again
    allocate(builder, "after_loop", (100,))  # 200 bytes: the loop's tiles are gone
    program = verify(plan_shared_memory(builder.build()))
    offsets = {name: item.offset for name, item in allocations(program).items()}
    expected = {"first": 0, "kept": 256, "in_loop": 0, "unfreed": 128, "after_free": 0, "after_loop": 0}
    assert offsets == expected
    assert program.shared_bytes == 512


def test_offsets_are_aligned_to_16_bytes_and_to_the_element():
    builder = ProgramBuilder("aligned", num_threads=32)
    allocate(builder, "nibbles", (7,), int4)  # 4 bytes
    allocate(builder, "bytes", (3,), uint8)
    allocate(builder, "doubles", (3,), int64)
    program = verify(plan_shared_memory(builder.build()))
    offsets = {name: item.offset for name, item in allocations(program).items()}
    assert offsets == {"nibbles": 0, "bytes": 16, "doubles": 32}
    assert program.shared_bytes == 56


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_random_lifetimes_are_planned_apart_and_no_higher_than_needed(data):
    """Random nests of allocations, frees and loops: the verifier accepts every plan, and the plan is no
    higher than placing every tile one after another."""
    builder = ProgramBuilder("random", num_threads=32)
    live: list[list] = [[]]  # per open body, its tiles not freed yet
    loops = []
    total = 0
    for step in range(data.draw(st.integers(1, 14))):
        action = data.draw(st.sampled_from(["alloc", "alloc", "free", "open", "close"]))
        if action == "alloc":
            dtype = data.draw(st.sampled_from([float16, float32, int4, uint8, int64]))
            size = data.draw(st.integers(1, 70))
            live[-1].append(allocate(builder, f"t{step}", (size,), dtype))
            total += -(-size * dtype.nbits // 128) * 16  # its bytes, rounded up to the alignment
        elif action == "free" and live[-1]:
            builder.emit(FreeShared(tensor=live[-1].pop(data.draw(st.integers(0, len(live[-1]) - 1)))))
        elif action == "open" and len(loops) < 2:
            loops.append(builder.for_range(f"i{step}", Const(0), Const(2), Const(1)))
            loops[-1].__enter__()
            live.append([])
        elif action == "close" and loops:
            loops.pop().__exit__(None, None, None)
            live.pop()
    while loops:
        loops.pop().__exit__(None, None, None)
    program = verify(plan_shared_memory(builder.build()))
    assert (program.shared_bytes or 0) <= total  # None: no allocation, no shared memory


@tv.kernel(num_warps=4)
def staged(a: tv.Tensor[tv.float16, 2], out: tv.Tensor[tv.float16, 2], FRAGMENT: tv.constexpr):
    small = tv.shared_tensor(tv.float32, [3])  # placed first: the swizzled tile is aligned past it
    tv.store_shared(small, tv.register_tensor(tv.float32, [3], init=1.0))
    stages = tv.shared_tensor(tv.float16, [2, 64, 64])
    for stage in tv.static_range(2):
        tv.copy_async(tv.slice_shared(stages, [stage, 0, 0], [64, 64]), a, offsets=[0, 64 * stage])
    tv.copy_async_commit()
    tv.copy_async_wait(0)
    tv.sync()
    tile = tv.load_shared(tv.slice_shared(stages, [1, 0, 0], [64, 64]), layout=FRAGMENT)
    tv.store_global(out, tile, offsets=[0, 0])


def planned_stages(fragment):
    a, out = torch.zeros(64, 128).half(), torch.zeros(64, 64).half()
    planned = staged.ir(a, out, FRAGMENT=fragment)  # after the Tile IR passes: planned
    return planned, allocations(planned)


# Four warps, each holding a 16-row band of the 64x64 tile as m16n8k16 A fragments (k along its locals).
A_FRAGMENTS = spatial(4, 1).local(1, 4) * mma_fragments("m16n8k16", "f16").a


def test_a_tile_read_by_ldmatrix_and_written_by_16_byte_copies_is_swizzled_conflict_free():
    planned, found = planned_stages(A_FRAGMENTS)
    layout = found["stages"].output.type.layout
    assert layout.swizzling is not None
    # The bank-conflict counter on one stage, for the two access patterns that use it:
    stage = layout.slice((1, 0, 0), (64, 64), dims=(1, 2))
    plain = SharedLayout.row_major(2, 64, 64).slice((1, 0, 0), (64, 64), dims=(1, 2))
    for pattern in ("ldmatrix", "cp_async_16B_rows"):
        requests = warp_accesses((64, 64), 16, pattern)
        assert sum(bank_conflicts(stage, 16, request) for request in requests) == 0
    ldmatrix = warp_accesses((64, 64), 16, "ldmatrix")
    assert sum(bank_conflicts(plain, 16, request) for request in ldmatrix) > 0  # the swizzle was needed
    # placed past the small tile, at a multiple of the swizzle's period
    offset = found["stages"].offset
    assert offset > 0 and offset % (layout.swizzling.period * 2) == 0
    # the slices carry the windows of the swizzled layout
    slices = [
        item.output.type.layout for item in walk_instructions(planned.body) if isinstance(item, SliceShared)
    ]
    assert slices == [layout.slice((stage_, 0, 0), (64, 64), (1, 2)) for stage_ in (0, 1, 1)]


def test_a_tile_without_conflicting_requests_stays_row_major():
    rows = spatial(16, 8).local(4, 8)  # each lane reads 16 bytes; 8 lanes read one whole 128-byte row
    _, found = planned_stages(rows)
    layout = found["stages"].output.type.layout
    assert layout == SharedLayout.row_major(2, 64, 64)
    stage = layout.slice((1, 0, 0), (64, 64), dims=(1, 2))
    table = rows.table()
    for warp in range(4):
        for row in range(4):
            lanes = [tuple(table[thread, row * 8]) for thread in range(32 * warp, 32 * warp + 32)]
            assert bank_conflicts(stage, 16, lanes) == 0


def test_a_pinned_layout_is_kept():
    builder = ProgramBuilder("pinned", num_threads=32)
    padded = SharedLayout((16, 32), (40, 1))
    allocate(builder, "padded", (16, 32), float16, padded)
    program = verify(plan_shared_memory(builder.build()))
    assert allocations(program)["padded"].output.type.layout == padded
    assert program.shared_bytes == (15 * 40 + 32) * 2


def test_a_planned_program_is_returned_unchanged():
    builder = ProgramBuilder("planned", num_threads=32)
    builder.emit_output(AllocShared, "a", dtype=float16, shape=(64,), offset=32)
    program = dataclasses.replace(builder.build(), shared_bytes=160)
    assert plan_shared_memory(program) is program


@tv.kernel(num_warps=2)
def reuse_after_free(x: tv.Tensor[tv.float32, 2], out: tv.Tensor[tv.float32, 2]):
    first = tv.shared_tensor(tv.float32, [16, 16])
    tv.store_shared(first, tv.load_global(x, offsets=[0, 0], shape=[16, 16]))
    tv.sync()
    transposed = tv.load_shared(tv.permute(first, [1, 0]))
    tv.free_shared(first)
    second = tv.shared_tensor(tv.float32, [16, 16])  # the bytes of first, which threads may still read
    tv.store_shared(second, transposed * 2.0)
    tv.sync()
    tv.store_global(out, tv.load_shared(second), offsets=[0, 0])


def test_an_allocation_that_takes_freed_bytes_waits_for_their_readers():
    """In Tile IR ``second`` is memory of its own; the plan gives it ``first``'s bytes, so it puts a sync in
    front of it, and the lowered program runs race-free with the reference's result."""
    x = torch.randn(16, 16, generator=torch.Generator().manual_seed(4))
    program = reuse_after_free.ir(x, x)
    (_, first), (position, second) = [
        (position, item) for position, item in enumerate(program.body) if isinstance(item, AllocShared)
    ]
    assert first.offset == second.offset
    assert isinstance(program.body[position - 1], Sync)
    out = torch.full((16, 16), float("nan"))
    reuse_after_free[(1,)](x, out)  # the SIMT interpreter checks every shared byte for races
    assert torch.equal(out, x.t() * 2.0)

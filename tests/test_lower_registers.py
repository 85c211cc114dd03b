"""The Thread IR of register-only instructions, read FileCheck style: one vector expression per elementwise
instruction, a static gather for a broadcast operand, low-bit dtypes widened to the machine dtype and
narrowed back, select for where, coordinates for arange, nothing for permute, a bitcast for view, and
convert_layout as a gather or through shared memory between barriers."""

from tilevm import ir
from tilevm.ir.thread import THREAD_IR
from tilevm.layout import broadcast_layout, local, replicated, spatial
from tilevm.passes.filecheck import filecheck
from tilevm.passes.lower import lower_to_threads

LAYOUT = spatial(4, 8).local(4, 2)  # [16, 16] over 32 threads: thread (r, c) holds rows 4r.., columns 2c..


def lowered(body: str, params: str = "", shared_bytes: str = "") -> str:
    """The Thread IR text of a 32-thread kernel with this Tile IR body (verified, and round-tripped)."""
    program = ir.verify(ir.parse(f"kernel k({params}) num_threads=32{shared_bytes} {{\n{body}\n}}"))
    threads = ir.verify(lower_to_threads(program), THREAD_IR)
    ir.check_round_trip(threads, THREAD_IR)
    return ir.print_program(threads, THREAD_IR)


def tile(name: str, dtype: str, layout=LAYOUT, init: str = "1") -> str:
    """A register tile of ``layout`` made by alloc_register (a register in Thread IR)."""
    shape = ", ".join(map(str, layout.shape))
    return (
        f"  %{name}: register<{dtype}, [{shape}], {layout}> = "
        f"alloc_register(dtype={dtype}, shape=[{shape}], init={init}:{dtype})"
    )


def result(name: str, dtype: str, layout=LAYOUT) -> str:
    return f"%{name}: register<{dtype}, [{', '.join(map(str, layout.shape))}], {layout}>"


def test_a_binary_on_float16_is_one_vector_expression():
    text = lowered(
        "\n".join(
            [
                tile("a", "float16"),
                tile("b", "float16"),
                f'  {result("c", "float16")} = binary(op="add", lhs=%a, rhs=%b)',
            ]
        )
    )
    filecheck(
        text,
        """
        CHECK: %A: vector<float16, 8> = let(
        CHECK: %B: vector<float16, 8> = let(
        CHECK-NEXT: %C: vector<float16, 8> = let(value=%A + %B)
        CHECK-NOT: cast
        """,
    )


def test_a_broadcast_column_is_gathered_into_the_result_slots():
    # thread (r, c) holds rows 4r + i, i < 4, twice each (columns 2c, 2c + 1); the column [16, 1] holds the
    # same 4 rows once each, so slot 2i + j of the result reads slot i of the column
    column = broadcast_layout(LAYOUT, (16, 1))
    body = [
        tile("a", "float32"),
        tile("column", "float32", column),
        f'  {result("c", "float32")} = binary(op="mul", lhs=%a, rhs=%column)',
    ]
    filecheck(
        lowered("\n".join(body)),
        """
        CHECK: %COLUMN: vector<float32, 4> = let(
        CHECK-NEXT: %C: vector<float32, 8> = let(value=%A * gather([%COLUMN], [0, 0, 1, 1, 2, 2, 3, 3]))
        """,
    )


def test_a_scalar_operand_is_splat_and_a_low_bit_integer_is_computed_in_8_bits():
    body = [tile("a", "int4"), f'  {result("c", "int4")} = binary(op="sub", lhs=%n, rhs=%a)']
    filecheck(
        lowered("\n".join(body), params="%n: int4"),
        """
        CHECK: %A: vector<int4, 8> = let(
        CHECK: %N: int8 = let(
        CHECK: %WIDE: vector<int8, 8> = let(
        CHECK-NEXT: %C: vector<int8, 8> = let(value=gather([%N], [0, 0, 0, 0, 0, 0, 0, 0]) - %WIDE)
        CHECK: vector<int4, 8> = let(
        """,
    )


def test_small_floats_compute_in_float16_where_it_is_exact_and_in_float32_otherwise():
    body = [
        tile("a", "float4_e2m1"),
        f'  {result("p", "float4_e2m1")} = binary(op="mul", lhs=%a, rhs=%a)',
        tile("b", "float8_e3m4"),
        f'  {result("q", "float8_e3m4")} = binary(op="add", lhs=%b, rhs=2.0:float8_e3m4)',
    ]
    filecheck(
        lowered("\n".join(body)),
        """
        CHECK: %P: vector<float16, 8> = let(value=%WA * %WA)
        CHECK: vector<float4_e2m1, 8> = let(
        CHECK: %Q: vector<float32, 8> = let(value=%WB + gather([2.0], [0, 0, 0, 0, 0, 0, 0, 0]))
        CHECK: vector<float8_e3m4, 8> = let(
        """,
    )


def test_where_is_a_select_and_moves_low_bit_values_as_their_codes():
    body = [
        tile("x", "float16"),
        tile("y", "float16"),
        f'  {result("m", "bool")} = binary(op="lt", lhs=%x, rhs=%y)',
        f"  {result('w', 'float16')} = where(condition=%m, on_true=%x, on_false=%y)",
        tile("s", "float6_e3m2"),
        f"  {result('v', 'float6_e3m2')} = where(condition=%m, on_true=%s, on_false=1.5:float6_e3m2)",
    ]
    filecheck(
        lowered("\n".join(body)),
        """
        CHECK: %M: vector<bool, 8> = let(value=%X < %Y)
        CHECK-NEXT: vector<float16, 8> = let(value=select(%M, %X, %Y))
        CHECK: %V: vector<uint8, 8> = let(value=select(%M, %CODES, gather([%ONE], [0, 0, 0, 0, 0, 0, 0, 0])))
        CHECK: %NARROW: vector<uint6, 8> = let(
        CHECK-NEXT: vector<float6_e3m2, 8> = let(value=bitcast<float6_e3m2, 8>(%NARROW))
        """,
    )


def test_arange_adds_each_slots_offset_to_the_threads_coordinate():
    layout = replicated(4).spatial(8).local(4)  # thread t holds 4 (t % 8) .. 4 (t % 8) + 3
    filecheck(
        lowered(f"  {result('i', 'int32', layout)} = arange(dtype=int32, size=32)"),
        """
        CHECK: %TID: int32 = let(value=thread_index())
        CHECK-NEXT: %COORD: int32 = let(value=(%TID % 8) * 4)
        CHECK: %I: vector<int32, 4> = let(value=gather([%COORD], [0, 0, 0, 0]) + pack([0, 1, 2, 3]))
        """,
    )


def test_permute_moves_nothing_and_view_is_a_bitcast():
    body = [
        tile("a", "uint8"),
        f"  {result('t', 'uint8', LAYOUT.permute(1, 0))} = permute(operand=%a, dims=[1, 0])",
        f'  {result("u", "uint8", LAYOUT.permute(1, 0))} = binary(op="xor", lhs=%t, rhs=%t)',
        f"  {result('n', 'int4', spatial(4, 8).local(4, 4))} = view(operand=%a, dtype=int4, shape=[16, 32])",
    ]
    filecheck(
        lowered("\n".join(body)),
        """
        CHECK: %A: vector<uint8, 8> = let(
        CHECK-NEXT: vector<uint8, 8> = let(value=%A ^ %A)
        CHECK-NEXT: vector<int4, 16> = let(value=bitcast<int4, 16>(%A))
        """,
    )


def test_a_conversion_within_each_thread_is_a_gather():
    source, target = spatial(32).local(2, 3), spatial(32).local(2, 3, order=(1, 0))
    body = [tile("a", "float32", source), f"  {result('b', 'float32', target)} = convert_layout(operand=%a)"]
    filecheck(
        lowered("\n".join(body)),
        """
        CHECK: %A: vector<float32, 6> = let(
        CHECK-NEXT: vector<float32, 6> = let(value=gather([%A], [0, 3, 1, 4, 2, 5]))
        CHECK-NOT: barrier
        """,
    )


def test_a_conversion_across_threads_goes_through_shared_memory_once_per_element():
    # [8, 8] halves: rows of 4 a thread, twice over (replicas), to columns of 2 elements 4 rows apart: one
    # replica stores 8 bytes at once, then each thread loads its 2 halves
    source, target = spatial(8, 2).local(1, 4).replicated(2), local(2, 1).spatial(4, 8)
    body = [tile("a", "float16", source), f"  {result('b', 'float16', target)} = convert_layout(operand=%a)"]
    filecheck(
        lowered("\n".join(body)),
        """
        CHECK: kernel k() num_threads=32 shared_bytes=128 {
        CHECK: %TID: int32 = let(value=thread_index())
        CHECK: %A: vector<float16, 4> = let(
        CHECK-NEXT: barrier()
        CHECK-NEXT: %FIRST: bool = let(value=(%TID % 2) < 1)
        CHECK-NEXT: %WRITE: int32 = let(value=((%ROW * 8) + %COLUMN) * 2)
        CHECK-NEXT: store(pointer=shared_pointer<float16>(%WRITE), value=%A, predicate=%FIRST)
        CHECK-NEXT: barrier()
        CHECK-NEXT: %READ: int32 = let(value=((%ROW2 * 8) + %COLUMN2) * 2)
        CHECK-NEXT: %P0: float16 = load(pointer=shared_pointer<float16>(%READ), width=2)
        CHECK-NEXT: %P1: float16 = load(pointer=shared_pointer<float16>(%READ + 64), width=2)
        CHECK-NEXT: vector<float16, 2> = let(value=gather([%P0, %P1], [0, 1]))
        """,
    )


def test_a_sub_byte_conversion_with_no_whole_bytes_a_thread_goes_through_one_byte_an_element():
    # one nibble a thread: two threads would write one byte, so each code goes through a byte of its own
    body = [
        tile("a", "int4", spatial(32)),
        f"  {result('b', 'int4', replicated(32).local(32))} = convert_layout(operand=%a)",
    ]
    filecheck(
        lowered("\n".join(body)),
        """
        CHECK: kernel k() num_threads=32 shared_bytes=32 {
        CHECK-NEXT: %TID: int32 = let(value=thread_index())
        CHECK: %COORD: int32 = let(value=%TID % 32)
        CHECK-NEXT: %ZERO: int32 = let(value=0)
        CHECK: %BYTE: uint8 = let(
        CHECK-NEXT: barrier()
        CHECK-NEXT: store(pointer=shared_pointer<uint8>(%COORD), value=%BYTE)
        CHECK-NEXT: barrier()
        CHECK-NEXT: %P0: vector<uint8, 16> = load(pointer=shared_pointer<uint8>(%ZERO), width=16)
        CHECK-NEXT: %P1: vector<uint8, 16> = load(pointer=shared_pointer<uint8>(%ZERO + 16), width=16)
        CHECK-NEXT: %W0: vector<uint32, 4> = let(value=bitcast<uint32, 4>(%P0))
        CHECK-NEXT: %W1: vector<uint32, 4> = let(value=bitcast<uint32, 4>(%P1))
        CHECK-NEXT: %BYTES: vector<uint8, 32> = let(value=bitcast<uint8, 32>(pack([element(%W0, 0),
        CHECK-SAME: element(%W0, 3), element(%W1, 0), element(%W1, 1), element(%W1, 2), element(%W1, 3)])))
        CHECK: %CODES: vector<uint4, 32> = let(
        CHECK-NEXT: vector<int4, 32> = let(value=bitcast<int4, 32>(%CODES))
        """,
    )

"""The verifier: each rule broken once, with the message and the source line asserted."""

import pytest

from tilevm import ir
from tilevm.dtypes import boolean, float16, float32, int4, int8, int32, int64, uint8
from tilevm.errors import CompilationError, SourceLocation
from tilevm.ir import (
    AllocRegister,
    AssignScalar,
    Binary,
    BinaryExpr,
    Const,
    DeclareScalar,
    For,
    LetScalar,
    Param,
    Program,
    ScalarType,
    Scope,
    TileType,
    Var,
)
from tilevm.layout import (
    broadcast_layout,
    local,
    mma_fragments,
    replicated,
    shared,
    spatial,
    view_layout,
)

HERE = SourceLocation("kernel.py", 42, 8)


def register(dtype, shape, layout=None):
    return Var("t", TileType(dtype, shape, Scope.REGISTER, layout))


def program(*body, params=(), num_threads=128):
    return Program("k", tuple(Param(p) for p in params), num_threads, tuple(body))


def verifier_error(prog) -> CompilationError:
    with pytest.raises(CompilationError) as caught:
        ir.verify(prog)
    return caught.value


def test_a_valid_program_passes_unchanged():
    tile = register(float32, (4, 8))
    prog = program(
        AllocRegister(output=tile, dtype=float32, shape=(4, 8), init=Const(1.0, float32), loc=HERE)
    )
    assert ir.verify(prog) is prog


def test_output_type_must_be_what_the_rule_gives():
    wrong = register(float16, (4, 8))
    error = verifier_error(program(AllocRegister(output=wrong, dtype=float32, shape=(4, 8), loc=HERE)))
    assert "expected register tile float32[4, 8]" in error.message
    assert error.location == HERE


def test_type_rule_of_an_instruction():
    a, b = register(float32, (4, 8)), register(float32, (3, 8))
    body = (
        AllocRegister(output=a, dtype=float32, shape=(4, 8)),
        AllocRegister(output=b, dtype=float32, shape=(3, 8)),
        Binary(output=register(float32, (4, 8)), op="add", lhs=a, rhs=b, loc=HERE),
    )
    error = verifier_error(program(*body))
    assert "do not broadcast" in error.message and error.message.startswith("binary:")
    assert error.location == HERE


def test_use_before_definition():
    n = Var("n", ScalarType(int32))
    error = verifier_error(program(DeclareScalar(output=Var("m", ScalarType(int32)), init=n, loc=HERE)))
    assert "n is used where it is not defined" in error.message
    assert error.location == HERE


def test_loop_values_are_not_visible_after_the_loop():
    i = Var("i", ScalarType(int32))
    inner = Var("inner", ScalarType(int32))
    loop = For(variable=i, start=Const(0), stop=Const(4), step=Const(1),
               body=(DeclareScalar(output=inner, init=i),))  # fmt: skip
    after = DeclareScalar(output=Var("after", ScalarType(int32)), init=inner, loc=HERE)
    error = verifier_error(program(loop, after))
    assert "inner is used where it is not defined" in error.message
    assert error.location == HERE


def test_a_variable_is_defined_once():
    m = Var("m", ScalarType(int32))
    error = verifier_error(
        program(DeclareScalar(output=m, init=Const(1)), DeclareScalar(output=m, init=Const(2), loc=HERE))
    )
    assert "defined twice" in error.message
    assert error.location == HERE


def test_set_assigns_only_a_declared_variable():
    n = Var("n", ScalarType(int32))
    bound = Var("bound", ScalarType(int32))
    declared = Var("declared", ScalarType(int32))
    fine = (DeclareScalar(output=declared, init=n), AssignScalar(variable=declared, value=Const(2)))
    assert ir.verify(program(*fine, params=(n,))).body == fine
    for target, defined_by in ((bound, LetScalar(output=bound, value=n)), (n, None)):
        body = (
            *fine,
            *([defined_by] if defined_by else []),
            AssignScalar(variable=target, value=Const(1), loc=HERE),
        )
        error = verifier_error(program(*body, params=(n,)))
        assert (
            error.message
            == f"set: {target.name} is not a declared variable; only a declare's variable can be set"
        )
        assert error.location == HERE


def test_scalar_operands_share_a_dtype():
    n = Var("n", ScalarType(int64))
    bad = BinaryExpr("add", n, Const(1, int32))
    error = verifier_error(
        program(DeclareScalar(output=Var("m", ScalarType(int64)), init=bad, loc=HERE), params=(n,))
    )
    assert "'add' of a int64 and a int32" in error.message
    assert error.location == HERE


def test_layout_must_have_the_tile_shape():
    tile = register(float32, (4, 8), layout=spatial(4, 8).local(1, 2))
    error = verifier_error(program(AllocRegister(output=tile, dtype=float32, shape=(4, 8), loc=HERE)))
    assert "has shape [4, 16], the tile [4, 8]" in error.message


def test_layout_must_spread_over_the_kernel_threads():
    tile = register(float32, (4, 8), layout=spatial(4, 8))
    error = verifier_error(
        program(AllocRegister(output=tile, dtype=float32, shape=(4, 8), loc=HERE), num_threads=64)
    )
    assert "spreads over 32 threads, the kernel has 64" in error.message
    assert error.location == HERE


def layout_error(*body, num_threads=32) -> CompilationError:
    error = verifier_error(program(*body, num_threads=num_threads))
    assert error.location == HERE
    return error


def alloc(tile):
    return AllocRegister(output=tile, dtype=tile.type.dtype, shape=tile.type.shape)


def test_a_program_whose_layouts_keep_every_rule_passes():
    # a dot on mma m16n8k16 fragments, its result scaled by a broadcast row, reduced, cast and viewed
    fragments = mma_fragments("m16n8k16", float16)
    a, b = register(float16, (16, 16), fragments.a), register(float16, (16, 8), fragments.b)
    accumulator = register(float32, (16, 8), fragments.c)
    product = register(float32, (16, 8), fragments.c)
    row = register(float32, (8,), broadcast_layout(fragments.c, (8,)))
    scaled = register(float32, (16, 8), fragments.c)
    total = register(float32, (16,), fragments.c.reduce(1, keepdim=False))
    halves = register(float16, (16,), fragments.c.reduce(1, keepdim=False))
    bits = view_layout(halves.type.layout, 16, 8, (32,))
    body = (
        *(alloc(tile) for tile in (a, b, accumulator, row)),
        ir.Dot(output=product, a=a, b=b, accumulator=accumulator),
        Binary(output=scaled, op="mul", lhs=product, rhs=row),
        ir.Reduce(output=total, operand=scaled, op="sum", dtype=float32, dim=1),
        ir.Cast(output=halves, operand=total, dtype=float16),
        ir.View(output=register(uint8, (32,), bits), operand=halves, dtype=uint8, shape=(32,)),
    )
    prog = program(*body, num_threads=32)
    assert ir.verify(prog) is prog


def test_a_broadcast_operand_has_the_result_layout_reduced_over_the_broadcast_dims():
    result_layout = spatial(4, 8)
    row = register(float32, (1, 8), spatial(1, 8).replicated(4))  # thread t holds column t // 4: wrong
    tile = register(float32, (4, 8), result_layout)
    body = (
        alloc(tile),
        alloc(row),
        Binary(output=register(float32, (4, 8), result_layout), op="add", lhs=tile, rhs=row, loc=HERE),
    )
    error = layout_error(*body)
    assert error.message == (
        "binary: rhs has layout spatial(1, 8).replicated(4), but with the result in spatial(4, 8) "
        "it must be replicated(4).spatial(1, 8)"
    )


def test_a_reduction_keeps_the_operand_layout_reduced():
    tile = register(float32, (4, 8), spatial(4, 8))
    body = (
        alloc(tile),
        ir.Reduce(output=register(float32, (4,), replicated(8).spatial(4)), operand=tile, op="max",
                  dtype=float32, dim=1, loc=HERE),
    )  # fmt: skip
    error = layout_error(*body)
    assert error.message == (
        "reduce: the result has layout replicated(8).spatial(4), "
        "but spatial(4, 8) reduced over dim 1 is spatial(4).replicated(8)"
    )


def test_dot_layouts_must_fit_an_atom():
    # each thread holds one accumulator element, but a's k is spread over threads
    accumulator = register(float32, (4, 8), spatial(4, 8))
    a = register(float32, (4, 4), spatial(4, 4).replicated(2))
    b = register(float32, (4, 8), local(4, 1) * spatial(1, 8).replicated(4))
    body = (
        *(alloc(tile) for tile in (a, b, accumulator)),
        ir.Dot(output=register(float32, (4, 8), spatial(4, 8)), a=a, b=b, accumulator=accumulator, loc=HERE),
    )
    error = layout_error(*body)
    assert error.message == (
        "dot: the layouts of a (spatial(4, 4).replicated(2)), b (spatial(1, 8).replicated(4).local(4, 1)) "
        "and the accumulator (spatial(4, 8)) fit no float32 dot atom; one multiply-add per thread needs "
        "a spatial(4, 1).replicated(8).local(1, 4) and b replicated(4).spatial(1, 8).local(4, 1)"
    )


def test_dot_result_has_the_accumulator_layout():
    fragments = mma_fragments("m16n8k16", float16)
    a, b = register(float16, (16, 16), fragments.a), register(float16, (16, 8), fragments.b)
    accumulator = register(float32, (16, 8), fragments.c)
    result = register(float32, (16, 8), spatial(16, 2).local(1, 4))
    body = (
        *(alloc(tile) for tile in (a, b, accumulator)),
        ir.Dot(output=result, a=a, b=b, accumulator=accumulator, loc=HERE),
    )
    error = layout_error(*body)
    assert error.message == (
        "dot: the result has layout spatial(16, 2).local(1, 4), "
        f"but must keep the accumulator's layout {fragments.c}"
    )


def test_cast_keeps_the_layout():
    tile = register(float32, (32, 2), spatial(32, 1).local(1, 2))
    body = (
        alloc(tile),
        ir.Cast(output=register(float16, (32, 2), spatial(16, 2).local(2, 1)), operand=tile, dtype=float16,
                loc=HERE),
    )  # fmt: skip
    error = layout_error(*body)
    assert error.message == (
        "cast: the result has layout spatial(16, 2).local(2, 1), "
        "but must keep the operand's layout spatial(32, 1).local(1, 2)"
    )


def test_assign_keeps_the_layout():
    target, value = register(float32, (32,), spatial(32)), register(float32, (32,), replicated(32).local(32))
    body = (alloc(target), alloc(value), ir.AssignTensor(destination=target, value=value, loc=HERE))
    error = layout_error(*body)
    assert error.message == (
        "assign: the value has layout replicated(32).local(32), "
        "but must keep the destination's layout spatial(32)"
    )


def test_convert_layout_needs_the_layout_to_convert_to():
    tile = register(float32, (32,), spatial(32))
    body = (alloc(tile), ir.ConvertLayout(output=register(float32, (32,)), operand=tile, loc=HERE))
    error = layout_error(*body)
    assert error.message == "convert_layout: the output t needs a layout: the one to convert to"


def test_a_shared_layout_gives_distinct_elements_distinct_offsets():
    smem = Var("s", TileType(float32, (4, 8), Scope.SHARED, shared((4, 8), strides=(4, 1))))
    error = layout_error(ir.AllocShared(output=smem, dtype=float32, shape=(4, 8), loc=HERE))
    assert error.message == (
        "alloc_shared: shared layout shared((4, 8), strides=(4, 1)) puts distinct elements at the same offset"
    )


def test_view_keeps_each_threads_bits():
    # thread t holds two bytes, t and 32 + t in row-major order, then one float16, bytes 2t and 2t + 1: the
    # same number of bits, but not the same bits
    source = register(uint8, (2, 32), local(2, 1).spatial(1, 32))
    result = register(float16, (32,), spatial(32))
    body = (
        alloc(source),
        ir.View(output=result, operand=source, dtype=float16, shape=(32,), loc=HERE),
    )
    error = layout_error(*body)
    assert error.message == (
        "view: a view from spatial(1, 32).local(2, 1) to spatial(32) moves bits between threads or slots; "
        "no layout of the result does keep them"
    )


def test_view_names_the_layout_that_keeps_the_bits():
    source = register(uint8, (8, 16), spatial(8, 4).local(1, 4))
    result = register(int4, (8, 32), spatial(4, 8).local(2, 4))
    body = (alloc(source), ir.View(output=result, operand=source, dtype=int4, shape=(8, 32), loc=HERE))
    error = layout_error(*body)
    assert error.message.endswith("spatial(8, 4).local(1, 8) would keep them")


def test_permute_permutes_the_layout():
    tile = register(float32, (4, 8), spatial(4, 8))
    result = register(float32, (8, 4), spatial(8, 4))
    error = layout_error(alloc(tile), ir.Permute(output=result, operand=tile, dims=(1, 0), loc=HERE))
    assert error.message == (
        "permute: the result has layout spatial(8, 4), but spatial(4, 8) permuted by [1, 0] is "
        "column_spatial(8, 4)"
    )


def test_permute_dims_name_each_dim_once():
    tile = register(float32, (4, 8))
    body = (alloc(tile), ir.Permute(output=register(float32, (4, 4)), operand=tile, dims=(0, 0), loc=HERE))
    error = verifier_error(program(*body))
    assert error.message == "permute: dims [0, 0] must name each dimension of a rank-2 tile once"
    assert error.location == HERE


def test_a_permuted_shared_view_permutes_the_strides():
    layout = shared((4, 8)).swizzle(1, 0, 3)
    smem = Var("s", TileType(float32, (4, 8), Scope.SHARED, layout))
    columns = Var("c", TileType(float32, (8, 4), Scope.SHARED, shared((8, 4))))
    body = (
        ir.AllocShared(output=smem, dtype=float32, shape=(4, 8)),
        ir.PermuteShared(output=columns, tensor=smem, dims=(1, 0), loc=HERE),
    )
    error = layout_error(*body)
    assert error.message == (
        "permute_shared: the result has layout shared((8, 4), strides=(4, 1)), but "
        "shared((4, 8), strides=(8, 1)).swizzle(1, 0, 3) permuted by [1, 0] is "
        "shared((8, 4), strides=(1, 8)).swizzle(1, 0, 3)"
    )


def test_arange_values_must_fit_the_dtype():
    error = verifier_error(program(ir.Arange(output=register(int8, (200,)), dtype=int8, size=200, loc=HERE)))
    assert error.message == "arange: arange(200) reaches 199, which does not fit in int8 (at most 127)"
    assert error.location == HERE


def test_a_reduction_accumulates_in_a_dtype_that_holds_every_operand_value():
    tile = register(float16, (4, 8))
    body = (
        alloc(tile),
        ir.Reduce(output=register(int32, (4,)), operand=tile, op="sum", dtype=int32, dim=1, loc=HERE),
    )
    error = verifier_error(program(*body))
    assert error.message == (
        "reduce: a sum of float16 values cannot be computed in int32: it needs a float dtype that holds "
        "every float16 value, such as float32"
    )
    assert error.location == HERE


def test_a_sum_is_not_computed_in_bool():
    tile = register(boolean, (4, 8))
    body = (
        alloc(tile),
        ir.Reduce(output=register(boolean, (4,)), operand=tile, op="sum", dtype=boolean, dim=1, loc=HERE),
    )
    error = verifier_error(program(*body))
    assert (
        error.message == "reduce: a sum cannot be computed in bool (it would not count); use an integer dtype"
    )
    assert error.location == HERE

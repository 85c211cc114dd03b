"""The generated binder against the slow path it stands in for: over random launches (dtypes, ragged sizes,
strides, addresses off 16-byte boundaries, int4 views of bytes, scalars and constexprs of every kind), equal
binder keys always come with equal descriptions (``describe_arguments``), the values the binder lays out
are the slow path's ``flat_values`` (addresses for tensors), a launch the slow path refuses never shares a
key with one it accepts, and the binder leaves nothing usual to the slow path."""

import inspect

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import tilevm as tv
from tilevm.errors import LaunchError
from tilevm.lang.parameters import flat_parameters
from tilevm.runtime.binding import TensorArgument, bind_arguments, describe_arguments, flat_values
from tilevm.runtime.launcher_binder import Layout, fixed_parts, make_binder, value_ranges


def launched(
    x: tv.Tensor,
    w: tv.Tensor[tv.float16, 2],
    q: tv.Tensor[tv.int4, 2],
    n: int,
    scale: float,
    flag: bool,
    wide: tv.int64,
    *,
    BLOCK: tv.constexpr = 64,
):
    """Never run: its signature is what the binder mirrors."""


SIGNATURE = inspect.signature(launched, eval_str=True)
BIND = make_binder(SIGNATURE)
NAMES = list(SIGNATURE.parameters)
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.int32, torch.int64]
EXTENTS = [0, 1, 3, 16, 17, 32, 40, 48]
STRIDES = [0, 1, 2, 3, 16, 17, 32, 40]


def strided(
    rng: np.random.Generator, dtype: torch.dtype, rank: int, contiguous: bool = False
) -> torch.Tensor:
    """A tensor of ``rank`` over a fresh storage, with random sizes, strides and element offset (so that
    its address may be off a 16-byte boundary)."""
    shape = [int(rng.choice(EXTENTS)) for _ in range(rank)]
    if contiguous:
        strides = [int(np.prod(shape[dim + 1 :])) for dim in range(rank)]
    else:
        strides = [int(rng.choice(STRIDES)) for _ in range(rank)]
    offset = int(rng.integers(0, 9))
    span = offset + sum((size - 1) * stride for size, stride in zip(shape, strides) if size) + 1
    storage = torch.zeros(span, dtype=dtype)
    return storage.as_strided(shape, strides, offset)


def pick(rng: np.random.Generator, usual: list, unusual: list, rate: float = 0.03) -> object:
    """A usual value, or now and then (``rate``) an unusual one."""
    choices = unusual if unusual and rng.random() < rate else usual
    return choices[rng.integers(len(choices))]


def random_launch(rng: np.random.Generator) -> tuple[tuple, dict]:
    """One launch's arguments, mostly well-formed, now and then not (a wrong dtype or rank, a 0-d tensor, a
    scalar out of range, a numpy number, a view)."""
    x = strided(rng, pick(rng, DTYPES, []), pick(rng, [1, 1, 2, 2, 3, 4, 5], [0]))
    w = strided(rng, pick(rng, [torch.float16], [torch.float32]), pick(rng, [2], [3]))
    q = strided(rng, torch.uint8, 2, contiguous=rng.random() < 0.9)
    if rng.random() < 0.1:  # a TensorArgument, of the dtype q reads or (now and then) of another
        q = tv.view(torch.zeros(4, 6, dtype=torch.uint8), pick(rng, [tv.int4], [tv.int2, tv.uint8], 0.3))
    if rng.random() < 0.1:  # x as a view of its bytes
        x = tv.view(strided(rng, torch.uint8, pick(rng, [1, 2], []), contiguous=True), tv.uint4)
    n = pick(rng, [0, 5, 16, -32, 48, 2**31 - 1], [2**31, True, np.int32(16)])
    scale = pick(rng, [0.5, -0.0, 2, float("nan")], [True, np.float32(0.5)])
    flag = pick(rng, [True, False], [1])
    wide = pick(rng, [2**40, -(2**63), 17], [2**63])
    block = pick(rng, [64, 64.0, -0.0, 0.0, True, 1, "a", (1, 2.5), (1, -0.0), None], [np.int64(64), [1]])
    return (x, w, q, n, scale, flag, wide), {"BLOCK": block}


def slow_path(args: tuple, kwargs: dict):
    """The description and flat launch values the slow path gives, or None when it refuses the launch."""
    try:
        values = bind_arguments(SIGNATURE, args, kwargs)
        described = describe_arguments(values, SIGNATURE)
    except LaunchError:
        return None
    named = [value.tensor if isinstance(value, TensorArgument) else value for value in values.values()]
    return described, flat_values(list(flat_parameters(described)), values, addresses=True), named


@settings(max_examples=12, phases=[Phase.generate])  # a seed does not shrink
@given(st.integers(0, 2**32 - 1))
def test_equal_keys_mean_equal_specializations(seed):
    rng = np.random.default_rng(seed)
    accepted, refused, bound_fast = {}, set(), 0
    for _ in range(150):
        args, kwargs = random_launch(rng)
        bound = BIND(*args, **kwargs)
        slow = slow_path(args, kwargs)
        if bound is None:
            continue
        bound_fast += 1
        key, full, arguments = bound
        if slow is None:
            refused.add(key)
            continue
        described, values, named = slow
        assert accepted.setdefault(key, described) == described, f"key {key} means two specializations"
        layout = Layout.of(described, list(flat_parameters(described)), NAMES)
        assert list(layout.values(full)) == values
        # what a callable grid is given: the slow path's values (a float by its text: -0.0, nan)
        assert [(type(value), repr(value)) for value in arguments] == [(type(v), repr(v)) for v in named]
        partial_key = check_partial_binder(rng, args, kwargs, bound, described)
        if partial_key is not None:
            assert accepted.setdefault(partial_key, described) == described
    assert not refused & accepted.keys(), "a refused launch shares a key with an accepted one"
    assert bound_fast > 90  # the usual launches are bound by the binder


def check_partial_binder(
    rng: np.random.Generator, args: tuple, kwargs: dict, bound: tuple, described: tuple
) -> tuple | None:
    """A binder with some arguments fixed (``Kernel.partial``) gives the full binder's values and arguments
    of the others, and ``fixed_parts`` those of the fixed ones; its key, with the fixed arguments' (a partial
    kernel has a table of its own: returned, or None when no binder was made) must mean one
    specialization."""
    if rng.random() > 0.3:  # a binder is made with exec: a few of them are enough
        return None
    named = dict(zip(NAMES, args)) | kwargs
    fixed = {name: value for name, value in named.items() if rng.random() < 0.5}
    partial, parts = make_binder(SIGNATURE, fixed), fixed_parts(SIGNATURE, fixed)
    assert partial is not None and parts is not None  # the launch was bound: none of its values is unusual
    key, full, arguments = partial(**{name: value for name, value in named.items() if name not in fixed})
    free_values, free_arguments = iter(full), iter(arguments)
    values, given = [], []
    for name, positions in value_ranges(described).items():  # the parameters in order
        if name in parts:
            values += parts[name][0]
            given.append(parts[name][1])
        else:
            values += [next(free_values) for _ in positions]
            given.append(next(free_arguments))
    assert next(free_values, None) is None and next(free_arguments, None) is None
    assert tuple(values) == bound[1]
    assert [(type(value), repr(value)) for value in given] == [(type(v), repr(v)) for v in bound[2]]
    fixed_keys = []  # each fixed argument's key, as a kernel of that parameter alone keys it
    for name, value in fixed.items():
        alone = inspect.Signature([SIGNATURE.parameters[name].replace(default=inspect.Parameter.empty)])
        fixed_keys.append((name, make_binder(alone)(**{name: value})[0]))
    return tuple(fixed_keys), key


def test_usual_arguments_are_bound_by_the_binder_and_unusual_ones_are_not():
    x = torch.zeros(40)
    w = torch.zeros(8, 16, dtype=torch.float16)
    q = torch.zeros(8, 4, dtype=torch.uint8)
    usual = (x, w, q, 16, 0.5, True, 2**40)
    assert BIND(*usual, BLOCK=64) is not None
    assert BIND(*usual[:4], 2, *usual[5:]) is not None  # an int for a float: converted as the slow path does
    assert BIND(tv.view(x, tv.int32), *usual[1:])[2][0] is x  # a view binds, its tensor passed on
    for position, unusual in [
        (1, tv.view(w, tv.int16)),  # w reads float16
        (3, np.int32(16)),
        (4, np.float32(0.5)),
        (3, True),
    ]:
        arguments = list(usual)
        arguments[position] = unusual
        assert BIND(*arguments) is None
    assert BIND(*usual, BLOCK=np.int64(64)) is None and BIND(*usual, BLOCK=[1]) is None


def test_the_int4_view_of_bytes_is_keyed_on_its_own_sizes_and_strides():
    q = torch.zeros(8, 3, dtype=torch.uint8)  # as int4: 8 x 6, strides (6, 1)
    args = (torch.zeros(4), torch.zeros(2, 2, dtype=torch.float16), q, 1, 1.0, False, 1)
    _, full, _ = BIND(*args)
    assert full[-9:-4] == (q.data_ptr(), 8, 6, 6, 1)
    described = describe_arguments(bind_arguments(SIGNATURE, args, {}), SIGNATURE)
    assert described[2].size_divisibility == (8, 2) and described[2].stride_divisibility == (2, 1)


@pytest.mark.parametrize("name", ["_tvkey", "_tv0_dtype"])
def test_a_parameter_named_like_the_generated_code_gets_no_binder(name):
    parameter = inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int)
    assert make_binder(inspect.Signature([parameter])) is None

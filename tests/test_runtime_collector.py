"""Compiling runs with Python's cyclic garbage collector paused (``tilevm.runtime.collector``): a full
collection of a process that imported torch costs more than compiling a kernel. The collector is back on
afterwards, also when the compile fails."""

import gc

import pytest
import torch

import tilevm as tv
from tilevm.runtime import jit
from tilevm.runtime.collector import collector_paused, without_collector


@tv.kernel(num_warps=1)
def double(x: tv.Tensor, out: tv.Tensor, BLOCK: tv.constexpr):
    start = tv.block_idx() * BLOCK
    tv.store_global(out, tv.load_global(x, offsets=[start], shape=[BLOCK]) * 2.0, offsets=[start])


def test_blocks_nest_and_restore_the_collector_as_they_found_it():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block found it off: it stays off
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_a_failing_function_gives_the_collector_back():
    @without_collector
    def fails():
        assert not gc.isenabled()
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fails()
    assert gc.isenabled()


def test_the_front_end_and_the_lowering_run_without_the_collector(monkeypatch):
    seen = []
    compile_kernel, run_pipeline = jit.compile_kernel, jit.run_pipeline

    def front_end(*args):
        seen.append(("front end", gc.isenabled()))
        return compile_kernel(*args)

    def passes(program, options, passes=None):
        seen.append(("passes", gc.isenabled()))
        return run_pipeline(program, options, passes)

    monkeypatch.setattr(jit, "compile_kernel", front_end)
    monkeypatch.setattr(jit, "run_pipeline", passes)
    x = torch.arange(8, dtype=torch.float32)
    out = torch.full((8,), float("nan"))
    double[(2,)](x, out, BLOCK=4)  # the SIMT interpreter runs the lowered program
    assert torch.equal(out, x * 2)
    assert seen == [("front end", False), ("passes", False), ("passes", False)]
    assert gc.isenabled()

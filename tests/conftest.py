"""Every program that a test compiles is printed, parsed back and compared after the test: the front end's
program and the program after every pass of the pipeline. Every program that an executor test runs also runs
with random layouts. With ``TILEVM_CROSSCHECK`` set on a GPU machine, every launch also runs on the GPU and
is compared (``gpu_crosscheck``). Every kernel a test compiles is lowered and compiled to PTX for sm_80 and
sm_90 and assembled with ptxas (``ptx_check``). Hypothesis draws the same examples on every run (a failure
reproduces) and has no deadline (a loaded machine must not fail a correct test). Every launch verifies the
program after every pass (``TILEVM_VERIFY``), which launches outside the tests skip."""

import os

import pytest
import torch
from gpu_crosscheck import CROSSCHECK_VARIABLE, crosschecked_launch
from hypothesis import settings
from layout_assignment import execute_with_random_layouts
from ptx_check import assemble_for_targets

from tilevm import ir
from tilevm.passes import pipeline
from tilevm.passes.options import VERIFY_VARIABLE
from tilevm.runtime import jit

os.environ.setdefault(VERIFY_VARIABLE, "1")

settings.register_profile("tilevm", derandomize=True, deadline=None)
settings.load_profile("tilevm")


@pytest.fixture(autouse=True)
def round_trip_every_compiled_program(monkeypatch):
    compiled = []

    def run_and_record(program, options, passes=None):
        result = program
        for stage, result in pipeline.stages(program, options, passes):
            compiled.append((stage, result))
        return result

    monkeypatch.setattr(jit, "run_pipeline", run_and_record)
    yield
    for stage, program in compiled:
        try:
            ir.check_round_trip(program, pipeline.instruction_set_of(stage))
        except AssertionError as failure:
            raise AssertionError(f"after {stage}: {failure}") from None
    last_tile_stage = pipeline.TILE_PASSES[-1].__name__
    assemble_for_targets([program for stage, program in compiled if stage == last_tile_stage])


@pytest.fixture(autouse=True)
def run_executor_tests_again_with_random_layouts(request, monkeypatch):
    """In the executor's tests, every program also runs with random layouts and must compute the same bits
    (see ``layout_assignment``)."""
    module = request.module
    if module.__name__.startswith("test_reference_"):
        # these test the reference executor: launches run on it, not on the SIMT interpreter
        monkeypatch.setenv(jit.CPU_EXECUTOR_VARIABLE, "reference")
        if hasattr(module, "execute"):
            monkeypatch.setattr(module, "execute", execute_with_random_layouts)


@pytest.fixture(autouse=True)
def crosscheck_launches_on_the_gpu(request, monkeypatch):
    report = os.environ.get(CROSSCHECK_VARIABLE)
    if report:
        import torch

        if torch.cuda.is_available():
            launch = crosschecked_launch(jit.Kernel.launch, report, request.node.nodeid)
            monkeypatch.setattr(jit.Kernel, "launch", launch)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped where torch sees no CUDA device (the marker's pyproject meaning)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device: torch.cuda.is_available() is False")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

"""Every program that a test compiles is printed, parsed back and compared after the test: the front end's
program and the program after every pass of the pipeline. Every program that an executor test runs also runs
with random layouts."""

import pytest
from layout_assignment import execute_with_random_layouts

from tilevm import ir
from tilevm.passes import pipeline
from tilevm.runtime import jit


@pytest.fixture(autouse=True)
def round_trip_every_compiled_program(monkeypatch):
    compiled = []

    def run_and_record(program, options):
        for stage, result in pipeline.stages(program, options):
            compiled.append((stage, result))
        return result

    monkeypatch.setattr(jit, "run_pipeline", run_and_record)
    yield
    for stage, program in compiled:
        try:
            ir.check_round_trip(program)
        except AssertionError as failure:
            raise AssertionError(f"after {stage}: {failure}") from None


@pytest.fixture(autouse=True)
def run_executor_tests_again_with_random_layouts(request, monkeypatch):
    """In the executor's tests, every program also runs with random layouts and must compute the same bits
    (see ``layout_assignment``)."""
    module = request.module
    if module.__name__.startswith("test_reference_") and hasattr(module, "execute"):
        monkeypatch.setattr(module, "execute", execute_with_random_layouts)

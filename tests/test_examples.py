"""The examples run as a user runs them, and check themselves against torch (each asserts its result)."""

import pathlib
import runpy

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_and_matches_torch(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    assert "match" in capsys.readouterr().out


def test_every_example_is_collected():
    assert {path.stem for path in EXAMPLES} >= {"vector_add", "softmax", "matmul_fp16", "w4a16_matmul"}

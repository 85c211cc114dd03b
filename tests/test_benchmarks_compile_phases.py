"""The phase clock of the compile-time benchmarks (``benchmarks/compile_phases.py``): a phase's time is
exclusive of the phases called inside it and the phases add up to at most the wall time around the call
(checked against ``time.perf_counter`` around it); only the main thread counts; the imports of a
``-X importtime`` report are those between the marks; and a cold compile measured by ``compile_time.py`` in
a new process is split into the documented phases, which add up to its total, within the wall time of that
process."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import time

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compile_phases  # noqa: E402  (benchmarks/ is no package: found through the path above)
import compile_time  # noqa: E402
from compile_phases import END_MARK, PHASES, START_MARK, PhaseClock, imports_in  # noqa: E402

from tilevm.runtime.cuda import ptxas  # noqa: E402

KEYS = [key for _, key in PHASES]


def test_a_phase_inside_another_counts_once() -> None:
    clock = PhaseClock()
    inner = clock.timed("llvm", lambda: time.sleep(0.02))

    def outer() -> str:
        time.sleep(0.03)
        inner()
        return "result"

    start = time.perf_counter()
    assert clock.timed("front_end", outer)() == "result"
    wall = time.perf_counter() - start
    assert clock.seconds["llvm"] >= 0.02
    assert clock.seconds["front_end"] >= 0.03
    # counted inclusively, front_end would hold the inner sleep too, and the sum would exceed the wall time
    assert clock.seconds["front_end"] + clock.seconds["llvm"] <= wall
    phases = clock.result(wall)
    assert list(phases) == KEYS
    assert phases["rest"] == pytest.approx(wall - clock.seconds["front_end"] - clock.seconds["llvm"])
    assert phases["rest"] >= 0


def test_only_the_main_thread_counts() -> None:
    clock = PhaseClock()
    sleep = clock.timed("ptxas", time.sleep)
    worker = threading.Thread(target=sleep, args=(0.05,))
    worker.start()
    worker.join()
    assert clock.seconds["ptxas"] == 0.0
    sleep(0.01)
    assert 0.01 <= clock.seconds["ptxas"] < 0.05


def test_an_exception_still_closes_its_phase() -> None:
    clock = PhaseClock()

    def failing() -> None:
        time.sleep(0.01)
        raise ValueError("refused")

    outer = clock.timed("lowering", clock.timed("llvm_ir", failing))
    with pytest.raises(ValueError, match="refused"):
        outer()
    assert clock.seconds["llvm_ir"] >= 0.01
    assert clock.seconds["lowering"] < clock.seconds["llvm_ir"]


def test_imports_are_those_between_the_marks() -> None:
    code = (
        "import sys, time\n"
        f"print({START_MARK!r}, file=sys.stderr, flush=True)\n"
        "start = time.perf_counter()\n"
        "import csv, decimal\n"
        "print(time.perf_counter() - start)\n"
        f"print({END_MARK!r}, file=sys.stderr, flush=True)\n"
        "import fractions, statistics\n"
    )
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    wall = float(completed.stdout)
    lines = {
        line.rsplit("|", 1)[1]: line.split("|")[1] for line in completed.stderr.splitlines() if "|" in line
    }
    expected = (int(lines[" csv"]) + int(lines[" decimal"])) * 1e-6  # the two imports' cumulative times
    assert " fractions" in lines  # imported after the end mark: not counted
    assert imports_in(completed.stderr) == pytest.approx(expected)
    assert 0 < imports_in(completed.stderr) <= wall


@pytest.mark.skipif(ptxas.find_ptxas() is None, reason="no ptxas: the cold compile would make no cubin")
def test_a_cold_compile_splits_into_the_documented_phases() -> None:
    example = compile_time.ROOT / "examples" / "vector_add.py"
    start = time.perf_counter()
    measured = compile_time.measure(example, compile_time.ROOT / "tilevm", bytecode=False, repeats=1)
    wall = time.perf_counter() - start
    phases, total = measured["phases"], measured["total"]
    assert list(phases) == KEYS
    assert all(seconds >= 0 for seconds in phases.values())
    assert sum(phases.values()) == pytest.approx(total)
    assert 0 < total < wall
    for key in ("imports", "lookup", "front_end", "lowering", "llvm_ir", "llvm", "ptxas", "disk"):
        assert phases[key] > 0, key
    assert phases["load"] == 0  # no module is loaded without a GPU
    assert 0 < measured["imports"] < total
    assert measured["recompile"] > 0


def test_bytecode_is_found_where_python_writes_it(tmp_path: pathlib.Path, monkeypatch) -> None:
    source = tmp_path / "tilevm_bytecode_probe.py"
    source.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not compile_phases.has_bytecode("tilevm_bytecode_probe")
    compile_phases.precompile(tmp_path)
    assert (tmp_path / "__pycache__").is_dir()
    assert compile_phases.has_bytecode("tilevm_bytecode_probe")
    assert not compile_phases.has_bytecode("tilevm_no_such_module")

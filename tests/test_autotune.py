"""The autotuner: its choice is the fastest candidate (by an injected timer), failures are skipped and
reported, choices persist per device in a JSON file that survives concurrent writers and damage, no search
happens on CPU tensors or with TILEVM_AUTOTUNE=0, and the progress bar's text."""

import io
import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import tilevm as tv
from tilevm.autotune import (
    AutotuneCache,
    AutotuneError,
    Autotuner,
    AutotuneWarning,
    ProgressBar,
    bar_text,
    gpu_time_us,
)

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda", 0)


@dataclass(frozen=True)
class Tile:
    block_n: int
    split_k: int


CANDIDATES = [Tile(64, 1), Tile(128, 1), Tile(128, 2), Tile(256, 4)]


class FakeTimer:
    """Times a candidate by looking up the config that ``run`` returns; counts its calls."""

    def __init__(self, times: dict[Tile, float]) -> None:
        self.times = times
        self.calls = 0

    def __call__(self, function):
        self.calls += 1
        return self.times[function()]


def tuner(tmp_path, timer) -> Autotuner:
    return Autotuner(
        "qgemm", timer=timer, device_name=lambda device: "Fake GPU sm_90", cache_directory=tmp_path
    )


def identity(config):
    return config


def test_the_choice_is_the_fastest_candidate_and_later_calls_do_not_time(tmp_path):
    timer = FakeTimer({Tile(64, 1): 30.0, Tile(128, 1): 21.5, Tile(128, 2): 17.25, Tile(256, 4): 19.0})
    first = tuner(tmp_path, timer)
    key = {"m": 1, "n": 8192, "k": 8192, "dtype": tv.int4}
    assert first.choose(key, CANDIDATES, identity, Tile(64, 1), CUDA) == Tile(128, 2)
    assert timer.calls == 4
    assert first.choose(key, CANDIDATES, identity, Tile(64, 1), CUDA) == Tile(128, 2)
    assert timer.calls == 4  # remembered in memory
    other_shape = {"m": 16, "n": 8192, "k": 8192, "dtype": tv.int4}
    timer.times = {Tile(64, 1): 5.0, Tile(128, 1): 6.0, Tile(128, 2): 7.0, Tile(256, 4): 8.0}
    assert first.choose(other_shape, CANDIDATES, identity, Tile(256, 4), CUDA) == Tile(64, 1)
    # a new process (a new tuner) finds both choices in the device's file and times nothing
    timer.calls = 0
    second = tuner(tmp_path, timer)
    assert second.choose(key, CANDIDATES, identity, Tile(64, 1), CUDA) == Tile(128, 2)
    assert second.choose(other_shape, CANDIDATES, identity, Tile(64, 1), CUDA) == Tile(64, 1)
    assert timer.calls == 0
    document = json.loads((tmp_path / "autotune" / "fake-gpu-sm-90.json").read_text())
    assert document["device"] == "Fake GPU sm_90"
    stored = {
        dict(json.loads(text)["key"])["m"]: (entry["config"], entry["time_us"])
        for text, entry in document["entries"].items()
    }
    assert stored == {1: ({"block_n": 128, "split_k": 2}, 17.25), 16: ({"block_n": 64, "split_k": 1}, 5.0)}
    assert {json.loads(text)["tilevm"] for text in document["entries"]} == {tv.__version__}


def test_candidates_and_default_are_made_only_when_a_choice_is_made(tmp_path):
    made = []

    def candidates():
        made.append("candidates")
        return CANDIDATES

    def default():
        made.append("default")
        return Tile(64, 1)

    timer = FakeTimer({Tile(64, 1): 3.0, Tile(128, 1): 2.0, Tile(128, 2): 1.0, Tile(256, 4): 4.0})
    lazy = tuner(tmp_path, timer)
    key = (("m", 16), ("format", tv.int4))  # a tuple of hashables: remembered as it is
    assert lazy.choose(key, candidates, identity, default, CUDA) == Tile(128, 2)
    assert lazy.choose(key, candidates, identity, default, CUDA) == Tile(128, 2)
    assert made == ["default", "candidates"]
    assert lazy.choose(key, candidates, identity, default, torch.device("cpu")) == Tile(64, 1)
    assert made == ["default", "candidates", "default"]


def test_a_stored_choice_that_is_no_longer_a_candidate_is_searched_again(tmp_path):
    timer = FakeTimer({Tile(64, 1): 3.0, Tile(128, 1): 2.0, Tile(128, 2): 1.0, Tile(256, 4): 4.0})
    tuner(tmp_path, timer).choose({"m": 4}, CANDIDATES, identity, Tile(64, 1), CUDA)
    fewer = [Tile(64, 1), Tile(256, 4)]
    assert tuner(tmp_path, timer).choose({"m": 4}, fewer, identity, Tile(256, 4), CUDA) == Tile(64, 1)
    assert timer.calls == 4 + 2


def test_dict_configs_are_chosen_stored_and_found_again(tmp_path):
    candidates = [{"block_n": 64, "stages": [2, 3]}, {"block_n": 128, "stages": [4]}]
    timer = FakeTimer({64: 5.0, 128: 4.0})
    first = tuner(tmp_path, timer)
    assert (
        first.choose({"m": 1}, candidates, lambda config: config["block_n"], candidates[0], CUDA)
        == candidates[1]
    )
    again = tuner(tmp_path, FakeTimer({}))
    assert (
        again.choose({"m": 1}, candidates, lambda config: config["block_n"], candidates[0], CUDA)
        is candidates[1]
    )


def test_candidates_that_fail_to_compile_or_launch_are_skipped_and_reported(tmp_path):
    timer = FakeTimer({Tile(64, 1): 9.0, Tile(256, 4): 11.0})

    def run(config):
        if config == Tile(128, 1):
            raise tv.LaunchError("kernel qgemm needs 300000 bytes of shared memory\nmore detail")
        if config == Tile(128, 2):
            raise RuntimeError("CUDA error: too many resources requested for launch")
        return config

    with pytest.warns(AutotuneWarning) as warned:
        result = tuner(tmp_path, timer).search({"m": 1}, CANDIDATES, run)
    assert (result.best, result.best_us) == (Tile(64, 1), 9.0)
    assert result.times_us == ((Tile(64, 1), 9.0), (Tile(256, 4), 11.0))
    assert result.failures == (
        (Tile(128, 1), "LaunchError: kernel qgemm needs 300000 bytes of shared memory"),
        (Tile(128, 2), "RuntimeError: CUDA error: too many resources requested for launch"),
    )
    message = str(warned[0].message)
    assert "skipped 2 candidate(s)" in message and "Tile(block_n=128, split_k=1): LaunchError" in message


def test_when_every_candidate_fails_the_error_lists_them(tmp_path):
    def run(config):
        raise tv.LaunchError(f"no {config.block_n}")

    with (
        pytest.warns(AutotuneWarning),
        pytest.raises(AutotuneError, match=r"every candidate failed: .*no 256"),
    ):
        tuner(tmp_path, FakeTimer({})).search({"m": 1}, CANDIDATES, run)


def test_a_bug_in_a_candidate_is_not_swallowed(tmp_path):
    def run(config):
        raise KeyError("a bug, not a launch failure")

    with pytest.raises(KeyError):
        tuner(tmp_path, FakeTimer({})).search({"m": 1}, CANDIDATES, run)


def test_no_search_on_cpu_tensors_nor_with_autotune_off(tmp_path, monkeypatch):
    timer = FakeTimer({})
    cpu_tuner = tuner(tmp_path, timer)
    assert cpu_tuner.choose({"m": 1}, CANDIDATES, identity, Tile(128, 1), torch.device("cpu")) == Tile(128, 1)
    monkeypatch.setenv("TILEVM_AUTOTUNE", "0")
    assert tuner(tmp_path, timer).choose({"m": 1}, CANDIDATES, identity, Tile(256, 4), CUDA) == Tile(256, 4)
    assert timer.calls == 0
    assert not (tmp_path / "autotune").exists()


def test_the_cache_round_trips_dict_configs_per_device(tmp_path):
    cache = AutotuneCache("NVIDIA H200 sm_90", tmp_path)
    cache.store('{"n": 1}', {"block_n": 64, "stages": [2, 3]}, 4.5)
    cache.store('{"n": 2}', {"block_n": 128, "stages": [4]}, 7.0)
    again = AutotuneCache("NVIDIA H200 sm_90", tmp_path)
    assert again.path == tmp_path / "autotune" / "nvidia-h200-sm-90.json"
    assert again.lookup('{"n": 1}') == {"block_n": 64, "stages": [2, 3]}
    assert again.lookup('{"n": 2}') == {"block_n": 128, "stages": [4]}
    assert again.lookup('{"n": 3}') is None
    assert AutotuneCache("NVIDIA H100 sm_90", tmp_path).lookup('{"n": 1}') is None  # another device's file
    assert list((tmp_path / "autotune").glob("*.tmp")) == []


@pytest.mark.parametrize(
    "damage", ["{not json", '{"format": 1, "entries": []}', '{"format": 99, "entries": {}}']
)
def test_a_damaged_cache_file_is_ignored_and_rewritten(tmp_path, damage):
    cache = AutotuneCache("Fake GPU", tmp_path)
    cache.path.parent.mkdir(parents=True)
    cache.path.write_text(damage)
    with pytest.warns(AutotuneWarning, match="damaged or of another format"):
        assert cache.lookup('{"n": 1}') is None
    with pytest.warns(AutotuneWarning):  # the store reads the damaged file once more before replacing it
        cache.store('{"n": 1}', {"block_n": 32}, 1.5)
    document = json.loads(cache.path.read_text())
    assert document["entries"] == {'{"n": 1}': {"config": {"block_n": 32}, "time_us": 1.5}}
    assert AutotuneCache("Fake GPU", tmp_path).lookup('{"n": 1}') == {"block_n": 32}


def test_two_processes_storing_at_once_keep_every_entry(tmp_path):
    writer = textwrap.dedent(
        """
        import sys
        from tilevm.autotune import AutotuneCache
        cache = AutotuneCache("Fake GPU", sys.argv[1])
        for index in range(40):
            cache.store(f"{sys.argv[2]}-{index}", {"index": index, "writer": sys.argv[2]}, float(index))
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", writer, str(tmp_path), name], cwd=ROOT) for name in ("a", "b")
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    entries = json.loads((tmp_path / "autotune" / "fake-gpu.json").read_text())["entries"]
    expected = {f"{name}-{index}": {"index": index, "writer": name} for name in "ab" for index in range(40)}
    assert {key: entry["config"] for key, entry in entries.items()} == expected
    assert list((tmp_path / "autotune").glob("*.tmp")) == []


def test_the_progress_bar_text():
    assert bar_text("tune", 0, 4, width=8) == "tune [--------] 0/4"
    assert bar_text("tune", 3, 4, "best 9.5 µs", width=8) == "tune [######--] 3/4 best 9.5 µs"
    assert bar_text("tune", 4, 4, width=8) == "tune [########] 4/4"
    stream = io.StringIO()
    bar = ProgressBar("tune", 3, stream=stream, enabled=True)
    bar.update(1, "best 12.0 µs")
    bar.update(3)
    bar.close()
    first = bar_text("tune", 1, 3, "best 12.0 µs")
    last = bar_text("tune", 3, 3)
    assert stream.getvalue() == f"\r{first}\r{last.ljust(len(first))}\n"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_search_draws_the_bar_on_a_terminal_only_and_unless_quiet(tmp_path, monkeypatch):
    timer = FakeTimer({Tile(64, 1): 3.0, Tile(128, 1): 2.0, Tile(128, 2): 1.0, Tile(256, 4): 4.0})
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    tuner(tmp_path, timer).search({"m": 1, "n": 64}, CANDIDATES, identity)
    lines = terminal.getvalue().split("\r")
    assert lines[1].rstrip() == bar_text("tilevm autotune qgemm m=1 n=64", 0, 4)
    assert lines[-1] == bar_text("tilevm autotune qgemm m=1 n=64", 4, 4, "best 1.0 µs") + "\n"
    monkeypatch.setenv("TILEVM_AUTOTUNE_QUIET", "1")
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    tuner(tmp_path, timer).search({"m": 1}, CANDIDATES, identity)
    not_a_terminal = io.StringIO()
    monkeypatch.delenv("TILEVM_AUTOTUNE_QUIET")
    monkeypatch.setattr(sys, "stderr", not_a_terminal)
    tuner(tmp_path, timer).search({"m": 1}, CANDIDATES, identity)
    assert quiet.getvalue() == not_a_terminal.getvalue() == ""


@pytest.mark.gpu
def test_on_the_gpu_the_tuner_picks_the_smaller_copy_and_stores_it(tmp_path):
    source = torch.randn(2**26, device="cuda")
    target = torch.empty_like(source)
    sizes = [2**26, 2**20, 2**24]

    def run(config):
        target[: config["elements"]].copy_(source[: config["elements"]])

    times = [gpu_time_us(lambda size=size: run({"elements": size})) for size in sizes]
    assert times[1] < times[2] < times[0]  # 256 MiB > 64 MiB > 4 MiB copied
    candidates = [{"elements": size} for size in sizes]
    real = Autotuner("copy", cache_directory=tmp_path)
    assert (
        real.choose({"what": "copy"}, candidates, run, candidates[0], torch.device("cuda", 0))
        == candidates[1]
    )
    (path,) = (tmp_path / "autotune").glob("*.json")
    assert torch.cuda.get_device_name() in json.loads(path.read_text())["device"]


@pytest.mark.gpu
def test_the_timer_counts_the_kernel_not_the_hosts_launch():
    x = torch.ones(1024, device="cuda")

    def slow_host():
        time.sleep(300e-6)  # a host path of at least 300 µs before a kernel of a few µs
        x.add_(1)

    assert gpu_time_us(slow_host) < 50

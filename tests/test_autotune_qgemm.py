"""The quantized GEMM's autotuning (tilevm.ops.tuning): the candidates follow the register rule, every
decode M shares one choice, the CPU runs the kernel's default config, and on the GPU the choice is stored in
the device's cache file and computes the same product."""

import dataclasses
import json

import pytest
import torch

import tilevm as tv
from tilevm.autotune import Autotuner
from tilevm.ops import quantize_weight, quantized_matmul, tuning
from tilevm.ops.qgemm import PrefillConfig, QGemmConfig, default_config, prefill_config
from tilevm.ops.qgemm.kernel import plan_error
from tilevm.ops.qgemm.prelayout import chunk_k, loads_per_chunk


@pytest.mark.parametrize(("bits", "count"), [(1, 14), (2, 26), (3, 14), (4, 26), (8, 26)])
def test_candidates_are_valid_and_keep_prefetch_within_the_registers(bits, count):
    m, n, k, group = 1, 8192, 8192, 128
    found = tuning.candidates(m, n, k, bits, group)
    default = found[0]
    assert default == default_config(m, n, k, bits, "cuda", group)
    # the default under every register cap; the decode kernel's other candidates under the default's
    uncapped = dataclasses.replace(default, max_registers=None)
    caps = {c.max_registers for c in found if dataclasses.replace(c, max_registers=None) == uncapped}
    assert caps == {None, 96, 128}
    others = [
        c
        for c in found
        if isinstance(c, QGemmConfig) and dataclasses.replace(c, max_registers=None) != uncapped
    ]
    assert others and all(c.max_registers == default.max_registers for c in others)
    staged = [config for config in found if isinstance(config, PrefillConfig)]
    # the prefill kernel at decode size: 4 or 8 warps across n, 1 to 8 blocks a tile, 8 rows a block
    assert {(config.n_warps, config.split_k) for config in staged} == {
        (4, 1),
        (4, 2),
        (4, 4),
        (4, 8),
        (8, 1),
        (8, 2),
        (8, 4),
        (8, 8),
    }
    assert all(config.block_m == 8 and config.m_warps == 1 for config in staged)
    found = [config for config in found if config not in staged]
    assert len(found) == len(set(found)) == count
    for config in found:
        assert plan_error(bits, config.chunks, group, k) is None, config
        assert config.chunks * chunk_k(bits) <= 256, config
        loads = config.chunks * config.n_tiles * loads_per_chunk(bits)
        assert not config.prefetch or (loads <= 4 and loads_per_chunk(bits) == 1), config
        assert config.block_m == 8 and config.k_warps in (4, 8) and config.split_k in (1, 2), config
    middle = tuning.candidates(64, n, k, bits, group)  # below the prefill kernel's sizes
    assert {(config.block_m, config.k_warps, config.split_k) for config in middle} == {(64, 1, 1)}
    prefill = tuning.candidates(4096, n, k, bits, group)
    assert prefill[0] == prefill_config(bits) and len(prefill) == len(set(prefill)) > 1
    for config in prefill:
        assert isinstance(config, PrefillConfig) and config.shared_bytes(bits) <= 227 * 1024, config


class Recorder:
    """Stands in for the tuner: records each key and answers with the default."""

    def __init__(self):
        self.keys = []
        self.generation = 0

    def choose(self, key, candidates, run, default, device):
        self.keys.append(key)
        return default()

    def forget(self):
        self.generation += 1


def test_decode_sizes_up_to_8_share_a_key_and_the_cpu_runs_the_default(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(tuning, "TUNER", recorder)
    generator = torch.Generator().manual_seed(31)
    qweight = quantize_weight(torch.randn(24, 64, generator=generator).half(), tv.int4, group_size=32)
    weight = qweight.dequantize(torch.float64)
    asked = []
    for m in (1, 8, 16, 17, 5):
        x = torch.randn(m, 64, generator=generator).half()
        before = len(recorder.keys)
        y = quantized_matmul(x, qweight)
        asked.append([dict(key)["m"] for key in recorder.keys[before:]])
        bound = 2**-7 * (x.double().abs() @ weight.abs().T) + 1e-6
        assert ((y.double() - x.double() @ weight.T).abs() <= bound).all()
        assert tuning.tuned_config(x, qweight, None) == default_config(m, 24, 64, 4, "cpu", 32)
    # the tuner is asked once per M bucket: the weight keeps the launch of its choice
    assert asked == [[8], [], [16], [32], []]
    assert dict(recorder.keys[0]) == {
        "m": 8, "n": 24, "k": 64, "format": repr(qweight.format), "compute_dtype": "torch.float16",
        "bias": False,
    }  # fmt: skip
    recorder.forget()  # what the tuner forgets, the weight's launches forget
    before = len(recorder.keys)
    quantized_matmul(torch.randn(3, 64, generator=generator).half(), qweight)
    assert [dict(key)["m"] for key in recorder.keys[before:]] == [8]


@pytest.mark.gpu
def test_on_the_gpu_the_choice_is_stored_and_computes_the_product(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "TUNER", Autotuner("qgemm", cache_directory=tmp_path))
    generator = torch.Generator(device="cuda").manual_seed(32)
    qweight = quantize_weight(torch.randn(4096, 4096, device="cuda", generator=generator).half(), tv.int4)
    x = torch.randn(4, 4096, device="cuda", generator=generator).half()
    y = quantized_matmul(x, qweight)
    reference = x.double() @ qweight.dequantize(torch.float64).T
    assert ((y.double() - reference).norm() / reference.norm()).item() < 2e-3
    (path,) = (tmp_path / "autotune").glob("*.json")
    (entry,) = json.loads(path.read_text())["entries"].values()
    chosen = tuning.tuned_config(x, qweight, None)  # remembered: no second search
    assert chosen in tuning.candidates(8, 4096, 4096, 4, 128)
    assert entry["config"] == dataclasses.asdict(chosen)

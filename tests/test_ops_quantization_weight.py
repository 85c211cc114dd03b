"""`QuantizedWeight`: its codes against `quantize_codes`, nbytes against the pre-layout's size worked out
by hand, saving and loading (state_dict, torch.save / torch.load with weights_only, pickle, safetensors)
bit for bit, its checks of inconsistent fields, and (on a GPU) the same results on CUDA as on the CPU."""

import copy
import dataclasses
import json
import pickle
import time

import numpy as np
import pytest
import safetensors.torch
import torch

import tilevm as tv
from tilevm.ops import QuantizedWeight, WeightFormat, quantize_weight
from tilevm.ops.quantization.quantize import quantize_codes

CASES = [("int4", 64, torch.float16), ("uint3", None, torch.bfloat16), ("nvfp4", 16, torch.float16)]
CASES += [
    ("mxfp6_e2m3", 32, torch.bfloat16),
    ("float7_e3m3", 128, torch.float16),
    ("uint8", 32, torch.float16),
]


def make(dtype: str, group_size: int | None, compute_dtype: torch.dtype, seed: int, shape=(13, 256)):
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(*shape, generator=generator)
    if dtype in ("nvfp4", "mxfp6_e2m3"):
        return w, quantize_weight(w, dtype, compute_dtype=compute_dtype)
    return w, quantize_weight(w, dtype, group_size, compute_dtype=compute_dtype)


def assert_same(a: QuantizedWeight, b: QuantizedWeight) -> None:
    assert a.format == b.format and a.shape == b.shape and a.compute_dtype == b.compute_dtype
    for name in ("packed", "scales", "zeros", "global_scale"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(
                x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8)
            ), name


@pytest.mark.parametrize("case", range(len(CASES)))
def test_codes_are_the_quantized_codes_through_the_pre_layout(case):
    dtype, group_size, compute_dtype = CASES[case]
    w, q = make(dtype, group_size, compute_dtype, seed=case)
    direct = quantize_codes(w, q.format, compute_dtype)
    assert torch.equal(q.codes(), direct.codes) and torch.equal(q.scales, direct.scales)
    assert q.codes().shape == (13, 256) and q.codes().dtype == torch.uint8


@pytest.mark.parametrize(
    ("dtype", "group_size", "shape", "expected"),
    [
        # int4: N 24 -> 32 (groups of 16 rows), chunks of 64 k, one 16-byte load per lane: 2 n-groups x 4
        # chunks x 512 + scales 4 x 24 x 2
        ("int4", 64, (24, 256), 2 * 4 * 512 + 4 * 24 * 2),
        # uint3: N 10 -> 16, K 100 -> 256 (3 loads per lane): 1 x 1 x 3 x 512 + scales and zeros 1 x 10 x 2
        ("uint3", None, (10, 100), 3 * 512 + 2 * 10 * 2),
        # nvfp4: 1 n-group x 1 chunk x 512 + 4 x 8 ue4m3 codes + the float32 global scale
        ("nvfp4", 16, (8, 64), 512 + 4 * 8 + 4),
        # int8: N 7 -> 16, chunks of 32 k: 1 x 6 x 512 + scales 6 x 7 x 2 (N is not padded there)
        ("int8", 32, (7, 192), 6 * 512 + 6 * 7 * 2),
    ],
)
def test_nbytes_counts_what_the_kernel_reads(dtype, group_size, shape, expected):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[1]))
    q = quantize_weight(w, dtype) if dtype == "nvfp4" else quantize_weight(w, dtype, group_size)
    assert q.nbytes == expected


def test_state_dict_holds_tensors_and_a_json_header():
    _, q = make("uint3", None, torch.bfloat16, seed=1, shape=(9, 96))
    state = q.state_dict("layer.")
    assert set(state) == {"layer.packed", "layer.scales", "layer.zeros", "layer.header"}
    assert all(isinstance(t, torch.Tensor) for t in state.values())
    header = json.loads(bytes(state["layer.header"].tolist()))
    assert header == {
        "version": 2,
        "dtype": "uint3",
        "group_size": 96,
        "scale_dtype": "bfloat16",
        "has_zeros": True,
        "has_global_scale": False,
        "shape": [9, 96],
        "compute_dtype": "bfloat16",
    }
    assert_same(QuantizedWeight.from_state_dict(state, "layer."), q)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_torch_save_and_load_round_trip_bit_for_bit(case, tmp_path):
    dtype, group_size, compute_dtype = CASES[case]
    _, q = make(dtype, group_size, compute_dtype, seed=10 + case)
    torch.save(q, tmp_path / "weight.pt")
    loaded = torch.load(tmp_path / "weight.pt")  # torch's default: weights_only=True
    assert isinstance(loaded, QuantizedWeight)
    assert_same(loaded, q)
    torch.save({"q": q.state_dict()}, tmp_path / "state.pt")
    assert_same(QuantizedWeight.from_state_dict(torch.load(tmp_path / "state.pt", weights_only=True)["q"]), q)
    assert_same(pickle.loads(pickle.dumps(q)), q)
    assert torch.equal(loaded.dequantize(torch.float64), q.dequantize(torch.float64))


def test_safetensors_round_trip_bit_for_bit(tmp_path):
    weights = {f"layers.{i}.": make(*CASES[i], seed=20 + i)[1] for i in range(len(CASES))}
    state = {key: t for prefix, q in weights.items() for key, t in q.state_dict(prefix).items()}
    safetensors.torch.save_file(state, tmp_path / "model.safetensors")
    loaded = safetensors.torch.load_file(tmp_path / "model.safetensors")
    for prefix, q in weights.items():
        assert_same(QuantizedWeight.from_state_dict(loaded, prefix), q)


def corrupt(state: dict, **header_changes) -> dict:
    header = json.loads(bytes(state["header"].tolist())) | header_changes
    return state | {"header": torch.tensor(list(json.dumps(header).encode()), dtype=torch.uint8)}


def test_from_state_dict_rejects_inconsistent_data():
    _, q = make("mxfp6_e2m3", 32, torch.float16, seed=2)
    state = q.state_dict()
    cases = [
        (
            {k: v for k, v in state.items() if k != "scales"},
            r"has keys \['header', 'packed'\] under prefix ''",
        ),
        (state | {"zeros": q.scales}, "expected"),
        ({k: v for k, v in state.items() if k != "header"}, "has no 'header'"),
        (state | {"header": torch.tensor([123, 34], dtype=torch.uint8)}, "is not UTF-8 JSON"),
        (corrupt(state, version=1), "has version 1; this tilevm reads version 2"),
        (corrupt(state, dtype="int12"), "dtype='int12' is not a weight code dtype"),
        (corrupt(state, group_size=48), "has group_size=48, which is neither supported nor K = 256"),
        (corrupt(state, compute_dtype="float32"), "is malformed"),
        (corrupt(state, shape=[13, 224]), r"scales must be a torch.uint8 tensor of shape \[7, 13\]"),
        (state | {"scales": torch.full_like(q.scales, 255)}, "e8m0 codes above 254"),
    ]
    for broken, message in cases:
        with pytest.raises(ValueError, match=message):
            QuantizedWeight.from_state_dict(broken)
    _, nvfp4 = make("nvfp4", 16, torch.float16, seed=3)
    with pytest.raises(ValueError, match="ue4m3 codes above 126"):
        QuantizedWeight.from_state_dict(nvfp4.state_dict() | {"scales": nvfp4.scales | 0x7F})


def test_the_constructor_checks_every_field():
    _, q = make("uint3", 32, torch.float16, seed=4)
    fields = {
        name: getattr(q, name) for name in ("format", "shape", "packed", "scales", "zeros", "global_scale")
    }
    fields["compute_dtype"] = q.compute_dtype
    cases = [
        ({"scales": q.scales.float()}, r"scales must be a torch.float16 tensor of shape \[8, 13\]"),
        ({"zeros": None}, "zeros must be a torch.float16 tensor"),
        ({"global_scale": torch.tensor(1.0)}, "global_scale must be None for this format"),
        ({"packed": q.packed[..., :8]}, "packed must be a torch.uint8 tensor of shape"),
        ({"scales": q.scales.to("meta")}, "scales is on meta but packed is on cpu"),
        ({"shape": (13, 255)}, "group_size=32 must divide K = 255"),
        ({"shape": [13, 256]}, r"shape must be a tuple \(N, K\) of positive ints"),
        ({"compute_dtype": torch.bfloat16}, "scale_dtype=float16 must be the compute dtype bfloat16"),
        ({"format": WeightFormat("uint3", 32)}, "format must be a resolved WeightFormat"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            QuantizedWeight(**(fields | changes))


def test_dequantize_rounds_once_to_the_requested_dtype():
    _, q = make("float8_e4m3", 64, torch.bfloat16, seed=5)
    exact = q.dequantize(torch.float64).numpy()
    assert q.dequantize().dtype == torch.bfloat16
    for dtype, target in (
        (torch.float16, tv.float16),
        (torch.bfloat16, tv.bfloat16),
        (torch.float32, tv.float32),
    ):
        expected = tv.round_to_dtype(exact, target).astype(np.float64)
        np.testing.assert_array_equal(q.dequantize(dtype).double().numpy(), expected)


def test_to_and_repr():
    _, q = make("nvfp4", 16, torch.float16, seed=6, shape=(8, 64))
    moved = q.to("cpu")
    assert moved is not q and moved.device == torch.device("cpu")
    assert_same(moved, q)
    assert repr(q) == (
        "QuantizedWeight(float4_e2m1, shape=(8, 64), group_size=16, scale_dtype=ue4m3, global_scale, "
        "compute_dtype=torch.float16, device=cpu, nbytes=548)"
    )


@pytest.mark.gpu
@pytest.mark.parametrize("case", range(len(CASES)))
def test_cuda_quantizes_as_the_cpu_does(case):
    dtype, group_size, compute_dtype = CASES[case]
    w, on_cpu = make(dtype, group_size, compute_dtype, seed=30 + case, shape=(300, 1024))
    on_cuda = quantize_weight(w.cuda(), on_cpu.format, compute_dtype=compute_dtype)
    assert on_cuda.device.type == "cuda" and on_cuda.packed.is_cuda and on_cuda.scales.is_cuda
    assert_same(on_cuda.to("cpu"), on_cpu)
    assert torch.equal(on_cuda.dequantize(torch.float64).cpu(), on_cpu.dequantize(torch.float64))
    assert_same(on_cpu.to("cuda").to("cpu"), on_cpu)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["int4", "nvfp4", "uint3"])
def test_a_28672_x_8192_weight_quantizes_in_about_a_second(dtype):
    w = torch.randn(28672, 8192, device="cuda", dtype=torch.float16)
    quantize_weight(w[:1024], dtype)  # warm up the kernels torch launches
    torch.cuda.synchronize()
    start = time.perf_counter()
    q = quantize_weight(w, dtype)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"{dtype}: {seconds:.3f} s")
    assert seconds < 3.0 and q.shape == (28672, 8192)


def test_copies_behave_as_the_original():
    """Deep copies hold non-interned dtypes: formats compare them by value."""
    w, q = make("nvfp4", 16, torch.bfloat16, seed=7, shape=(8, 64))
    assert_same(copy.deepcopy(q), q)
    fmt = copy.deepcopy(q.format)
    assert fmt.scale_dtype is not tv.ue4m3 and fmt == q.format
    assert_same(
        quantize_weight(w, copy.deepcopy(WeightFormat.preset("nvfp4")), compute_dtype=torch.bfloat16), q
    )
    assert_same(
        QuantizedWeight(**{f.name: getattr(q, f.name) for f in dataclasses.fields(q)} | {"format": fmt}), q
    )

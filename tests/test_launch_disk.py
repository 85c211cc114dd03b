"""Specializations on disk, found without the front end (``tilevm.runtime.launcher_cache``): what a
compilation read is fingerprinted so that another process can check it (values by their bits, modules by
name, functions by their source); a manifest round-trips through the disk cache and is refused once a name
it lists has changed; the key changes with everything the front end reads."""

import importlib.metadata
import math
import os
import runpy
import sys

import numpy as np
import pytest
import torch

import tilevm as tv
from tilevm.codegen import llvmlite_version
from tilevm.lang.captures import ABSENT, Captures
from tilevm.passes import CompileOptions
from tilevm.runtime import launcher_cache
from tilevm.runtime.binding import bind_arguments, describe_arguments
from tilevm.runtime.launcher_cache import KERNEL_MODULE, fingerprint, manifest

OFFSET = 3
COEFFICIENTS = [1, 2]  # a list: no fingerprint
MODULE = sys.modules[__name__]


@tv.func
def shifted(tile):
    return tile + OFFSET


def shifted_again_source(tile):
    return tile + OFFSET + 1


def copy_shifted(x: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], BLOCK: tv.constexpr):
    tv.store_global(out, shifted(tv.load_global(x, offsets=[0], shape=[BLOCK])), offsets=[0])


def test_fingerprints_tell_values_apart_as_the_cache_must():
    assert fingerprint(0.0) != fingerprint(-0.0) and fingerprint(math.nan) == fingerprint(float("nan"))
    assert fingerprint(1) != fingerprint(True) and fingerprint((1, 2.5)) == fingerprint((1, 2.5))
    assert fingerprint(np) == ["module", "numpy"] and fingerprint(tv.int4) == ["dtype", repr(tv.int4)]
    assert fingerprint(ABSENT) == ["absent"] and fingerprint(math.sqrt) == ["object", "math.sqrt"]
    assert fingerprint(shifted)[:2] == ["function", f"{__name__}.shifted"]
    assert fingerprint(tv.func(shifted_again_source)) != fingerprint(shifted)  # another body
    assert (
        fingerprint(COEFFICIENTS) is None and fingerprint(object()) is None and fingerprint((1, [2])) is None
    )


def compiled_captures(kernel_function, **constexprs) -> Captures:
    """What compiling ``kernel_function`` for two int32 tensors of 8 read."""
    kernel = tv.kernel(num_warps=1)(kernel_function)
    x = torch.arange(8, dtype=torch.int32)
    described = describe_arguments(bind_arguments(kernel.signature, (x, x), constexprs), kernel.signature)
    return kernel.front_end(described, CompileOptions())[1]


def test_the_manifest_lists_what_the_compile_read_and_refuses_what_has_no_fingerprint():
    reads = manifest(copy_shifted, compiled_captures(copy_shifted, BLOCK=8))
    assert (KERNEL_MODULE, "shifted", fingerprint(shifted)) in reads
    assert (KERNEL_MODULE, "OFFSET", fingerprint(OFFSET)) in reads  # read by the tv.func
    assert (KERNEL_MODULE, "tv", ["module", "tilevm"]) in reads

    def reads_a_list(x: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], BLOCK: tv.constexpr):
        tile = tv.load_global(x, offsets=[0], shape=[BLOCK])
        tv.store_global(out, tile * COEFFICIENTS[1], offsets=[0])

    assert manifest(reads_a_list, compiled_captures(reads_a_list, BLOCK=8)) is None


def test_a_kernel_in_a_file_run_as_a_script_has_a_manifest(tmp_path):
    # python script.py or runpy: the kernel's module is not in sys.modules under its name; its globals are
    # found again through the kernel function, so the specialization can still be stored
    script = tmp_path / "a_script.py"
    script.write_text(
        "import tilevm as tv\n"
        "SCALE = 3\n\n\n"
        "def scaled(x: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], BLOCK: tv.constexpr):\n"
        "    tv.store_global(out, tv.load_global(x, offsets=[0], shape=[BLOCK]) * SCALE, offsets=[0])\n"
    )
    scaled = runpy.run_path(str(script), run_name="not_a_module")["scaled"]
    assert "not_a_module" not in sys.modules
    reads = manifest(scaled, compiled_captures(scaled, BLOCK=8))
    assert (KERNEL_MODULE, "SCALE", fingerprint(3)) in reads
    assert (KERNEL_MODULE, "tv", ["module", "tilevm"]) in reads


def test_a_closure_variable_of_the_kernel_is_listed_by_name():
    scale = 5

    def scales(x: tv.Tensor[tv.int32, 1], out: tv.Tensor[tv.int32, 1], BLOCK: tv.constexpr):
        tv.store_global(out, tv.load_global(x, offsets=[0], shape=[BLOCK]) * scale, offsets=[0])

    assert ("", "scale", fingerprint(5)) in manifest(scales, compiled_captures(scales, BLOCK=8))


def test_a_stored_specialization_is_found_until_a_global_it_read_changes(tmp_path, monkeypatch):
    pytest.importorskip("tilevm.runtime.cuda", reason="the cuda runtime (its DiskCache) has not landed yet")
    codegen = pytest.importorskip("tilevm.codegen")
    if not hasattr(codegen, "CompiledPtx"):
        pytest.skip("tilevm.codegen.CompiledPtx has not landed yet")
    from tilevm.runtime.launcher_cache import load_specialization, store_specialization

    monkeypatch.setenv("TILEVM_CACHE_DIR", str(tmp_path))
    compiled = codegen.CompiledPtx(
        name="copy_shifted", ptx="// ptx", llvm_ir="; ir", target="sm_90", num_threads=32, shared_bytes=0,
        parameters=("pointer", "i32", "pointer", "i32"),
    )  # fmt: skip
    reads = manifest(copy_shifted, compiled_captures(copy_shifted, BLOCK=8))
    store_specialization("k" * 64, reads, compiled, b"cubin bytes")
    found_compiled, cubin, captures = load_specialization("k" * 64, copy_shifted)
    assert (found_compiled, cubin) == (compiled, b"cubin bytes") and captures.unchanged()
    monkeypatch.setattr(MODULE, "OFFSET", 4)
    assert not captures.unchanged()  # what it read is watched in this process, as after a compile
    assert load_specialization("k" * 64, copy_shifted) is None
    monkeypatch.setattr(MODULE, "OFFSET", 3)
    assert load_specialization("k" * 64, copy_shifted) is not None
    assert load_specialization("j" * 64, copy_shifted) is None


def test_the_package_fingerprint_follows_every_source_and_the_llvmlite_version_its_metadata(
    tmp_path, monkeypatch
):
    package = tmp_path / "package"
    (package / "inner").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "inner" / "b.py").write_text("y = 2\n")
    (package / "notes.txt").write_text("not a source")
    monkeypatch.setattr(launcher_cache, "PACKAGE", package)

    def fingerprint_now():
        launcher_cache.package_fingerprint.cache_clear()
        return launcher_cache.package_fingerprint()

    first = fingerprint_now()
    (package / "notes.txt").write_text("still not a source, longer")
    assert fingerprint_now() == first
    (package / "inner" / "b.py").write_text("y = 20\n")  # a nested source changes size
    second = fingerprint_now()
    assert second != first
    os.utime(package / "a.py", ns=(0, 10**9))  # and one only its modification time
    assert fingerprint_now() not in (first, second)
    launcher_cache.package_fingerprint.cache_clear()
    assert llvmlite_version() == importlib.metadata.version("llvmlite")

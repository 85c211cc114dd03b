"""The pure tables of ``tilevm.runtime.cuda.device`` (the PTX ISA version of each CUDA release, the target of
each chip, cubin compatibility) against NVIDIA's own tables, and the driver layer on a machine without a
driver: lazy import, a clear error, and ``check``'s messages."""

from __future__ import annotations

import subprocess
import sys
import threading
import types

import pytest
from cuda.bindings.utils import get_minimal_required_cuda_ver_from_ptx_ver

from tilevm.errors import CudaError
from tilevm.runtime.cuda import device, driver


def known_ptx_versions() -> list[tuple[int, int]]:
    """(PTX ISA version times ten, first CUDA release with it) from cuda-python's transcription of the PTX
    ISA document's release history, for every version from 7.0 (the first sm_80 runs) on."""
    found = []
    for major in range(7, 12):
        for minor in range(10):
            try:
                found.append(
                    (major * 10 + minor, get_minimal_required_cuda_ver_from_ptx_ver(f"{major}.{minor}"))
                )
            except ValueError:
                continue
    return found


def test_every_release_gets_the_newest_ptx_isa_it_has():
    known = known_ptx_versions()
    assert len(known) >= 20
    for release in range(11000, 13100, 10):
        expected = max(version for version, first in known if first <= release)
        assert device.max_ptx_version(release) == expected, release


@pytest.mark.parametrize(
    ("cuda", "ptx"),
    [(13000, 90), (12080, 87), (12060, 85), (12040, 84), (12030, 83), (12020, 82), (12010, 81), (12000, 80),
     (11080, 78), (12050, 85), (12070, 86), (12090, 88)],
)  # fmt: skip
def test_ptx_isa_release_notes(cuda, ptx):
    """The rows of the PTX ISA document's release notes (CUDA 12.6 added no PTX version)."""
    assert device.max_ptx_version(cuda) == ptx


def test_newer_driver_than_the_table_gets_the_newest_known_version_and_old_driver_is_an_error():
    assert device.max_ptx_version(99000) == device.PTX_ISA_RELEASES[-1][1]
    with pytest.raises(CudaError, match=r"CUDA 10\.2; tilevm needs CUDA 11\.0 or newer"):
        device.max_ptx_version(10020)


@pytest.mark.parametrize(
    ("capability", "target"),
    [((8, 0), "sm_80"), ((8, 6), "sm_86"), ((8, 7), "sm_86"), ((8, 9), "sm_89"), ((9, 0), "sm_90a"),
     ((10, 0), "sm_90"), ((10, 3), "sm_90"), ((12, 0), "sm_90")],
)  # fmt: skip
def test_target_for_each_chip(capability, target):
    """A100 8.0, A10/RTX 30 8.6, Orin 8.7, L4/L40/RTX 40 8.9, H100/H200 9.0, B200 10.0, B300 10.3, RTX 50
    12.0 (CUDA C++ Programming Guide's compute capability table); Hopper gets its architecture-specific
    sm_90a (wgmma), chips after it sm_90 PTX, which sm_90a's is not (PTX ISA, "Target ISA notes")."""
    assert device.target_for(capability) == target


@pytest.mark.parametrize("capability", [(7, 5), (7, 0), (6, 1)])
def test_chips_before_sm_80_are_an_error(capability):
    with pytest.raises(CudaError, match=rf"capability {capability[0]}\.{capability[1]}; tilevm needs sm_80"):
        device.target_for(capability)


@pytest.mark.parametrize(
    ("target", "capability", "runs"),
    [("sm_80", (8, 0), True), ("sm_80", (8, 6), True), ("sm_80", (8, 9), True), ("sm_86", (8, 0), False),
     ("sm_86", (8, 7), True), ("sm_89", (8, 6), False), ("sm_80", (9, 0), False), ("sm_90", (9, 0), True),
     ("sm_90", (10, 0), False), ("sm_90", (12, 0), False), ("sm_90a", (9, 0), True),
     ("sm_90a", (10, 0), False)],
)  # fmt: skip
def test_cubin_compatibility(target, capability, runs):
    """CUDA's binary compatibility: a cubin for X.y runs on X.z with z >= y, never on another major."""
    assert device.runs_cubin(target, capability) is runs


def test_cuda_version_text():
    assert [device.cuda_version_text(v) for v in (12080, 13000, 11040)] == ["12.8", "13.0", "11.4"]


def test_importing_tilevm_initialises_no_cuda():
    code = "import sys, tilevm, tilevm.runtime.cuda; print('cuda.bindings' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


@pytest.fixture
def uninitialised(monkeypatch):
    monkeypatch.setattr(driver, "_bindings", None)


def has_driver() -> bool:
    try:
        driver.bindings()
    except CudaError:
        return False
    return True


@pytest.mark.skipif(has_driver(), reason="a CUDA driver is installed here")
def test_missing_driver_is_a_clear_error(uninitialised):
    with pytest.raises(CudaError, match="no usable CUDA driver: cuInit failed"):
        driver.bindings()


def test_missing_cuda_python_is_a_clear_error(uninitialised, monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)  # makes the import raise ImportError
    with pytest.raises(CudaError, match="cannot import cuda-python's driver bindings"):
        driver.bindings()


class FakeResult(int):
    """A CUresult stand-in: an int, falsy for success, as cuda-python's enum is."""


def test_check_returns_the_values_and_raises_naming_call_kernel_and_error(monkeypatch):
    names = {700: b"CUDA_ERROR_ILLEGAL_ADDRESS"}
    texts = {700: b"an illegal memory access was encountered"}
    fake = types.SimpleNamespace(
        cuGetErrorName=lambda result: (FakeResult(0), names[result]),
        cuGetErrorString=lambda result: (FakeResult(0), texts[result]),
    )
    monkeypatch.setattr(driver, "_bindings", fake)
    assert driver.check((FakeResult(0),), "cuCtxSynchronize") is None
    assert driver.check((FakeResult(0), 7), "cuDeviceGet") == 7
    assert driver.check((FakeResult(0), 7, "x"), "cuX") == (7, "x")
    with pytest.raises(CudaError) as raised:
        driver.check((FakeResult(700), None), "cuLaunchKernel", "axpy")
    assert str(raised.value) == (
        "cuLaunchKernel failed for kernel 'axpy': "
        "CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)"
    )


def test_primary_contexts_are_retained_once_per_device_on_first_use(monkeypatch):
    retained = []

    def retain(device):
        retained.append(device)
        return FakeResult(0), f"context of {device}"

    fake = types.SimpleNamespace(
        cuDeviceGet=lambda index: (FakeResult(0), f"device {index}"), cuDevicePrimaryCtxRetain=retain
    )
    monkeypatch.setattr(driver, "_bindings", None)
    monkeypatch.setattr(driver, "_initialise", lambda: fake)
    monkeypatch.setattr(driver, "_primary_contexts", {})
    first = []
    # the first call also initialises the driver: in a thread, so that a deadlock fails instead of hanging
    thread = threading.Thread(target=lambda: first.append(driver.primary_context(1)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert first == ["context of device 1"]
    assert driver.primary_context(1) == "context of device 1"
    assert driver.primary_context(0) == "context of device 0"
    assert retained == ["device 1", "device 0"]

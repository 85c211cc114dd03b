"""The disk cache: entries round-trip, keys are sha256 of length-prefixed parts, a damaged or truncated entry
is a miss and is removed, processes writing one key at once never leave a damaged entry, TILEVM_CACHE_DIR
moves the cache, and a directory that cannot be written only turns caching off."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import random
import struct
import warnings

import pytest
from test_cuda_ptxas import stand_in

from tilevm.runtime.cuda import cache
from tilevm.runtime.cuda.cache import HEADER, CacheWarning, DiskCache, cache_key


@pytest.fixture
def disk(tmp_path):
    return DiskCache(tmp_path / "cache")


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_put_then_get_round_trips_many_entries(disk):
    entries = {cache_key(f"program {seed}"): random_bytes(seed, 1 + seed * 997) for seed in range(12)}
    for key, data in entries.items():
        assert disk.get(key) is None
        disk.put(key, data)
    for key, data in entries.items():
        assert disk.get(key) == data
    disk.put(next(iter(entries)), b"replaced")
    assert disk.get(next(iter(entries))) == b"replaced"


def test_cache_key_is_sha256_of_length_prefixed_parts():
    expected = hashlib.sha256()
    for part in (b"program", b"sm_90"):
        expected.update(len(part).to_bytes(8, "little") + part)
    assert cache_key(b"program", "sm_90") == expected.hexdigest()
    assert cache_key("ab", "c") != cache_key("a", "bc")
    assert cache_key("a") != cache_key("a", "")


def test_keys_must_be_file_name_safe(disk):
    with pytest.raises(ValueError, match=r"cache key '\.\./x'"):
        disk.get("../x")


@pytest.mark.parametrize("seed", range(4))
def test_a_flipped_byte_anywhere_is_a_removed_miss(disk, seed):
    rng = random.Random(seed)
    key = cache_key(str(seed))
    disk.put(key, random_bytes(seed, 3000))
    path = disk.path(key)
    data = bytearray(path.read_bytes())
    position = rng.randrange(len(data)) if seed else rng.randrange(HEADER.size)  # seed 0: in the header
    data[position] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="damaged entry"):
        assert disk.get(key) is None
    assert not path.exists()
    disk.put(key, b"rebuilt")
    assert disk.get(key) == b"rebuilt"


@pytest.mark.parametrize("keep", [0, 5, HEADER.size, HEADER.size + 100])
def test_a_truncated_entry_is_a_removed_miss(disk, keep):
    key = cache_key("truncated", str(keep))
    disk.put(key, random_bytes(keep, 1000))
    path = disk.path(key)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.warns(CacheWarning):
        assert disk.get(key) is None
    assert not path.exists()


def test_an_entry_with_bytes_appended_is_a_miss(disk):
    key = cache_key("appended")
    disk.put(key, b"payload")
    disk.path(key).write_bytes(disk.path(key).read_bytes() + b"x")
    with pytest.warns(CacheWarning):
        assert disk.get(key) is None


def test_tilevm_cache_dir_moves_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(tmp_path / "elsewhere"))
    disk = DiskCache()
    assert disk.directory == tmp_path / "elsewhere"
    disk.put(cache_key("k"), b"data")
    assert (tmp_path / "elsewhere" / f"{cache_key('k')}.tvc").is_file()
    monkeypatch.delenv(cache.CACHE_VARIABLE)
    assert cache.default_directory().parts[-2:] == (".cache", "tilevm")


def test_an_unwritable_directory_warns_once_and_caches_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    disk = DiskCache(blocker / "cache")  # a directory under a file can never be made (even by root)
    with pytest.warns(CacheWarning, match="cannot write to .*a-file/cache.*kernels will not be cached"):
        disk.put(cache_key("k"), b"data")
    assert not disk.writable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        disk.put(cache_key("k"), b"data")  # no second warning
        assert disk.get(cache_key("k")) is None


def test_no_temporary_files_are_left(disk):
    for seed in range(5):
        disk.put(cache_key("same"), random_bytes(seed, 500))
    assert [path.name for path in disk.directory.iterdir()] == [f"{cache_key('same')}.tvc"]


def hammer(directory: str, key: str, seed: int, rounds: int, payloads: list[bytes]) -> None:
    """Write this process's payload under ``key`` again and again, reading between writes: every read is a
    miss or one of the payloads, whole."""
    warnings.simplefilter("error")  # a damaged entry warns: make it fail this process
    disk = DiskCache(directory)
    for _ in range(rounds):
        disk.put(key, payloads[seed])
        data = disk.get(key)
        if data is not None and data not in payloads:
            raise AssertionError("read a payload that no process wrote")


def test_processes_writing_one_key_at_once_leave_a_whole_entry(tmp_path):
    payloads = [random_bytes(seed, 200_000 + seed) for seed in range(4)]
    key = cache_key("contended")
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=hammer, args=(str(tmp_path), key, seed, 15, payloads)) for seed in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    assert DiskCache(tmp_path).get(key) in payloads
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("with_cubin", [False, True])
def test_kernels_round_trip_exactly(disk, with_cubin):
    compiled = stand_in("axpy", "sm_90", num_threads=256, shared_bytes=70_000)
    compiled = dataclasses.replace(compiled, llvm_ir="define ptx_kernel void @axpy() {\n  ret void\n}")
    cubin = b"\x7fELF" + random_bytes(7, 5000) if with_cubin else None
    key = cache_key(compiled.ptx, compiled.target)
    disk.store_kernel(key, compiled, cubin)
    loaded, loaded_cubin = disk.load_kernel(key)
    assert loaded == compiled and isinstance(loaded.parameters, tuple)
    assert loaded_cubin == cubin


def test_a_kernel_entry_of_other_fields_is_a_miss(disk):
    """An entry another version of tilevm wrote (CompiledPtx had other fields) or that is not a kernel."""
    key = cache_key("other version")
    fields = {**dataclasses.asdict(stand_in("axpy")), "registers": 32}
    text = json.dumps({"fields": fields, "cubin": False}).encode()
    disk.put(key, struct.pack("<Q", len(text)) + text)
    assert disk.load_kernel(key) is None
    disk.put(key, b"\x05\x00\x00\x00\x00\x00\x00\x00{}!!!")
    assert disk.load_kernel(key) is None
    assert disk.load_kernel(cache_key("absent")) is None

"""The pre-layout of quantized weights: codes stored in the order the GEMM kernel's threads read them.

The kernel multiplies ``X [M, K]`` (operand A of ``mma.m16n8k16``) by the dequantized weight seen as
``[k, n]`` (operand B). Each thread of a warp loads its B fragments for a *chunk* of ``chunk_k(b)``
values of k and 8 columns, 16 bytes per load, a warp's load being 512 contiguous bytes, and ``tv.view``
reads those bytes as the code dtype with no shuffle. For a code width ``b``:

- ``E = 128 // gcd(b, 128)`` codes per thread per chunk, in ``L = E * b // 128`` loads of 16 bytes, and a
  chunk spans ``KC = 4 * E`` values of k (512, 256, 512, 128, 512, 256, 512, 64 for b = 1..8);
- N is padded to a multiple of 8 and K to a multiple of KC with code 0;
- ``packed`` is ``uint8 [N_pad // 8, K_pad // KC, L, 32, 16]``: ``packed[gn, c, l, lane, byte]`` is byte
  ``16 * l + byte`` of lane ``lane``'s bit string for the columns ``8 * gn ..`` and the chunk ``c``; code
  ``e`` of the string is at bits ``[e * b, (e + 1) * b)``, least significant bit first (as ``tv.view``
  reads bits);
- lane ``4 * nn + t`` holds column ``8 * gn + nn``; its code ``e`` (``jj = e // 4``, ``s1 = e // 2 % 2``,
  ``s0 = e % 2``) is B's element for the mma k16 step ``jj`` of the chunk, register half ``(s1, s0)``, at
  the true k ``c * KC + 32 * (jj // 2) + 8 * t + 4 * (jj % 2) + 2 * s1 + s0``. That permutation of k gives
  each thread's A fragments 8 contiguous values of X per 32 values of k (one 16-byte load per row).

So the k index of a code, written in mixed radix from the most significant digit, is
``(c, jj // 2, t, jj % 2, s1, s0)`` with radices ``(K_pad // KC, E // 8, 4, 2, 2, 2)``, and its place in
``packed`` is ``(gn, c, lane = (nn, t), e = (jj // 2, jj % 2, s1, s0))``: ``pack`` is one reshape and one
permute of the padded codes, then a bit packing of each lane's string.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "LANES",
    "LOAD_BYTES",
    "N_GROUP",
    "chunk_k",
    "codes_per_thread",
    "loads_per_chunk",
    "pack",
    "unpack",
]

#: threads of a warp, bytes of one load instruction per thread, and the columns of one mma n8 tile
LANES, LOAD_BYTES, N_GROUP = 32, 16, 8
#: the k digits inside a 32-value block of one thread: (jj % 2, s1, s0), 8 values, after t's 4
_K_INNER, _K_THREADS = 8, 4


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int from 1 to 8, got {bits!r}")


def codes_per_thread(bits: int) -> int:
    """``E``: the codes one thread holds per chunk, the fewest that fill whole 16-byte loads."""
    _check_bits(bits)
    return 128 // math.gcd(bits, 128)


def loads_per_chunk(bits: int) -> int:
    """``L``: the 16-byte loads one thread makes per chunk."""
    return codes_per_thread(bits) * bits // 128


def chunk_k(bits: int) -> int:
    """``KC``: the values of k one chunk spans (``4 * E``: 4 threads of a column share a chunk)."""
    return _K_THREADS * codes_per_thread(bits)


def _padded(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _to_strings(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``[..., E]`` codes (each below ``2**bits``) as ``[..., E * bits // 8]`` bytes, code ``e`` at bits
    ``[e * bits, (e + 1) * bits)``: every 8 codes are ``bits`` whole bytes, each byte the or of the (at
    most two per code) pieces of the codes that overlap it, computed in uint8 (whose shifts drop the bits
    that leave the byte)."""
    if bits == 8:
        return codes
    octets = codes.reshape(*codes.shape[:-1], -1, 8)
    strings = torch.zeros(*octets.shape[:-1], bits, dtype=torch.uint8, device=codes.device)
    for index in range(8):
        start = index * bits
        first, offset = divmod(start, 8)
        strings[..., first] |= octets[..., index] << offset
        if offset + bits > 8:
            strings[..., first + 1] |= octets[..., index] >> (8 - offset)
    return strings.reshape(*codes.shape[:-1], -1)


def _from_strings(strings: torch.Tensor, bits: int) -> torch.Tensor:
    """The inverse of ``_to_strings``: ``[..., E * bits // 8]`` bytes as ``[..., E]`` codes."""
    if bits == 8:
        return strings
    octet_bytes = strings.reshape(*strings.shape[:-1], -1, bits)
    codes = torch.empty(*octet_bytes.shape[:-1], 8, dtype=torch.uint8, device=strings.device)
    mask = (1 << bits) - 1
    for index in range(8):
        first, offset = divmod(index * bits, 8)
        code = octet_bytes[..., first] >> offset
        if offset + bits > 8:
            code |= octet_bytes[..., first + 1] << (8 - offset)
        codes[..., index] = code & mask
    return codes.reshape(*strings.shape[:-1], -1)


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The pre-layout of ``codes`` (``uint8 [N, K]``, raw ``bits``-bit patterns): ``uint8 [N_pad // 8,
    K_pad // KC, L, 32, 16]`` as the module docstring defines, on ``codes``' device."""
    _check_bits(bits)
    if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8 or codes.dim() != 2:
        raise ValueError(f"codes must be a uint8 tensor [N, K], got {_describe(codes)}")
    if codes.numel() and int(codes.max()) >= 1 << bits:
        raise ValueError(f"codes must be below 2**bits = {1 << bits}, got a code {int(codes.max())}")
    n, k = codes.shape
    if n == 0 or k == 0:
        raise ValueError(f"codes must have at least one row and one column, got shape {[n, k]}")
    per_thread, kc = codes_per_thread(bits), chunk_k(bits)
    n_pad, k_pad = _padded(n, N_GROUP), _padded(k, kc)
    padded = torch.zeros(n_pad, k_pad, dtype=torch.uint8, device=codes.device)
    padded[:n, :k] = codes
    # n = (gn, nn); k = (c, jh, t, jl, s1, s0) with jh = jj // 2, jl = jj % 2
    digits = padded.reshape(
        n_pad // N_GROUP, N_GROUP, k_pad // kc, per_thread // _K_INNER, _K_THREADS, _K_INNER
    )
    # -> (gn, c, nn, t, jh, (jl, s1, s0)): lane = (nn, t), e = (jh, jl, s1, s0)
    strings = digits.permute(0, 2, 1, 4, 3, 5).reshape(n_pad // N_GROUP, k_pad // kc, LANES, per_thread)
    string_bytes = _to_strings(strings, bits)  # [gn, c, lane, 16 * L]
    loads = string_bytes.reshape(n_pad // N_GROUP, k_pad // kc, LANES, loads_per_chunk(bits), LOAD_BYTES)
    return loads.permute(0, 1, 3, 2, 4).contiguous()


def unpack(packed: torch.Tensor, bits: int, n: int, k: int) -> torch.Tensor:
    """The codes ``uint8 [n, k]`` that ``pack`` stored in ``packed`` (the inverse of ``pack``)."""
    _check_bits(bits)
    per_thread, kc, loads = codes_per_thread(bits), chunk_k(bits), loads_per_chunk(bits)
    n_pad, k_pad = _padded(n, N_GROUP), _padded(k, kc)
    expected = (n_pad // N_GROUP, k_pad // kc, loads, LANES, LOAD_BYTES)
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or tuple(packed.shape) != expected:
        raise ValueError(f"packed must be a uint8 tensor of shape {list(expected)}, got {_describe(packed)}")
    string_bytes = packed.permute(0, 1, 3, 2, 4).reshape(
        n_pad // N_GROUP, k_pad // kc, LANES, loads * LOAD_BYTES
    )
    strings = _from_strings(string_bytes, bits)
    digits = strings.reshape(
        n_pad // N_GROUP, k_pad // kc, N_GROUP, _K_THREADS, per_thread // _K_INNER, _K_INNER
    )
    padded = digits.permute(0, 2, 1, 4, 3, 5).reshape(n_pad, k_pad)
    return padded[:n, :k].contiguous()


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"

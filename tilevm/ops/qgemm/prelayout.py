"""The pre-layout of quantized weights: codes stored in the order the GEMM kernel's threads read them.

The kernel computes ``out.T = W @ X.T``: the weight ``W [n, k]`` is operand A of ``mma.m16n8k16`` (16 rows
of n an atom) and ``X.T`` operand B (8 rows of X an atom, so that a decode step of one to eight rows
wastes little of the mma). Each thread of a warp loads its A fragments for a *chunk* of ``chunk_k(b)``
values of k and 16 values of n, 16 bytes per load, a warp's load being 512 contiguous bytes, and
``tv.view`` reads those bytes as the code dtype with no shuffle. For a code width ``b``:

- ``E = 128 // gcd(b, 128)`` codes per thread per chunk, in ``L = E * b // 128`` loads of 16 bytes, and a
  chunk spans ``KC = 2 * E`` values of k (256, 128, 256, 64, 256, 128, 256, 32 for b = 1..8): an mma step
  takes 8 codes of each thread and 16 values of k;
- N is padded to a multiple of 16 and K to a multiple of KC with code 0;
- ``packed`` is ``uint8 [N_pad // 16, K_pad // KC, L, 32, 16]``: ``packed[gn, c, l, lane, byte]`` is byte
  ``16 * l + byte`` of lane ``lane``'s bit string for the rows ``16 * gn ..`` and the chunk ``c``; code
  ``e`` of the string is at bits ``[e * b, (e + 1) * b)``, least significant bit first (as ``tv.view``
  reads bits);
- lane ``4 * g + t`` holds the rows ``n = 16 * gn + 8 * nh + g`` (``nh`` = 0, 1); the code of A's element
  of the mma k16 step ``jj = 2 * jh + jl`` of the chunk, register ``2 * s1 + nh``, half ``s0`` (the
  fragment's order: ``p = (jh, jl, s1, nh)`` of radices ``(E // 16, 2, 2, 2)`` numbers the f16x2 registers
  of the chunk) is at the true k ``c * KC + 32 * jh + 8 * t + 4 * jl + 2 * s1 + s0``. That permutation of
  k gives each thread's B fragments (the values of X at the same k) 8 contiguous values of X per 32
  values of k: one 16-byte load per row of X;
- in the string, the two codes of a register are *twins* for the widths 1, 2 and 4: with ``F = 16 // b``
  codes in 16 bits (``twins_per_half``), register ``p = (ph, pl)`` (``pl < F``) has its half ``s0`` at
  code ``e = (ph, s0, pl)``, so that each 32-bit word holds ``F`` registers' low codes in its low half and
  their high codes at the same bits of its high half: one ``lop3`` takes a pair out under a magic
  exponent (``tilevm.passes.lower.cast_packed``). The other widths have ``F = 1``: ``e = (p, s0)``, the
  two codes side by side (a width that does not divide 16 has no twins in a word; 8 bits gain nothing,
  a prmt picks any two bytes).

So the k index of a code, written in mixed radix from the most significant digit, is
``(c, jh, t, jl, s1, s0)`` with radices ``(K_pad // KC, E // 16, 4, 2, 2, 2)``, and its place in ``packed``
is ``(gn, c, lane = (g, t), e = (ph, s0, pl))`` with ``(ph, pl) = (jh, jl, s1, nh)``: ``pack`` is one
reshape and two permutes of the padded codes, then a bit packing of each lane's string.
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
    "twins_per_half",
    "unpack",
]

#: threads of a warp, bytes of one load instruction per thread, and the rows of n of one mma m16 atom
LANES, LOAD_BYTES, N_GROUP = 32, 16, 16
#: codes of a thread per mma step
_STEP_CODES = 8
#: the widths whose strings hold twins: those that divide 16, but 8 (a prmt places any two bytes as well)
_TWIN_WIDTHS = (1, 2, 4)


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
    """``KC``: the values of k one chunk spans (``2 * E``: an mma step takes 8 codes a thread, 16 of k)."""
    return 2 * codes_per_thread(bits)


def twins_per_half(bits: int) -> int:
    """``F``: the registers whose two codes a 32-bit word of the string holds as twins, 16 bits apart (the
    codes that fill 16 bits for the widths 1, 2 and 4; 1 for the others, whose codes lie side by side)."""
    _check_bits(bits)
    return 16 // bits if bits in _TWIN_WIDTHS else 1


#: the digits of n in a group of 16 rows (nh, g), and of a lane (g, t)
_N_DIGITS, _LANE_DIGITS = (2, 8), (8, 4)
#: (gn, nh, g, c, jh, t, jl, s1, s0) -> (gn, c, g, t, jh, jl, s1, nh, s0), and back
_PACK_ORDER = (0, 3, 2, 5, 4, 6, 7, 1, 8)
_UNPACK_ORDER = tuple(_PACK_ORDER.index(dim) for dim in range(len(_PACK_ORDER)))


def _k_digits(per_thread: int) -> tuple[int, ...]:
    """The digits (jh, t, jl, s1, s0) of k inside a chunk."""
    return (per_thread // (2 * _STEP_CODES), 4, 2, 2, 2)


def _code_digits(per_thread: int) -> tuple[int, ...]:
    """The digits (jh, jl, s1, nh, s0) of a code's place in its lane's string."""
    return (per_thread // (2 * _STEP_CODES), 2, 2, 2, 2)


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
    per_thread, kc, twins = codes_per_thread(bits), chunk_k(bits), twins_per_half(bits)
    n_pad, k_pad = _padded(n, N_GROUP), _padded(k, kc)
    padded = torch.zeros(n_pad, k_pad, dtype=torch.uint8, device=codes.device)
    padded[:n, :k] = codes
    # n = (gn, nh, g); k = (c, jh, t, jl, s1, s0)
    digits = padded.reshape(n_pad // N_GROUP, *_N_DIGITS, k_pad // kc, *_k_digits(per_thread))
    # -> (gn, c, g, t, jh, jl, s1, nh, s0): lane = (g, t), (p, s0) with p = (jh, jl, s1, nh) = (ph, pl)
    registers = digits.permute(_PACK_ORDER).reshape(n_pad // N_GROUP, k_pad // kc, LANES, -1, twins, 2)
    # -> e = (ph, s0, pl)
    strings = registers.transpose(-1, -2).reshape(n_pad // N_GROUP, k_pad // kc, LANES, per_thread)
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
    strings = _from_strings(string_bytes, bits)  # e = (ph, s0, pl) -> (p, s0)
    registers = strings.reshape(*strings.shape[:-1], -1, 2, twins_per_half(bits)).transpose(-1, -2)
    digits = registers.reshape(n_pad // N_GROUP, k_pad // kc, *_LANE_DIGITS, *_code_digits(per_thread))
    padded = digits.permute(_UNPACK_ORDER).reshape(n_pad, k_pad)
    return padded[:n, :k].contiguous()


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"a {type(value).__name__}"

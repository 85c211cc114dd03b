"""An fp16 matmul with float32 accumulation: tiles of A and B staged in shared memory through copy_async,
in a two-stage pipeline (the next tiles are in flight while the current ones are multiplied)."""

import torch

import tilevm as tv

# on a CUDA GPU when there is one, else on the CPU through the SIMT interpreter (the same lowered program)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@tv.kernel(num_warps=4)
def matmul(
    a: tv.Tensor[tv.float16, 2],
    b: tv.Tensor[tv.float16, 2],
    c: tv.Tensor[tv.float16, 2],
    BM: tv.constexpr,
    BN: tv.constexpr,
    BK: tv.constexpr,
    STAGES: tv.constexpr,
):
    m0 = tv.block_idx(0) * BM
    n0 = tv.block_idx(1) * BN
    a_stages = tv.shared_tensor(tv.float16, [STAGES, BM, BK])
    b_stages = tv.shared_tensor(tv.float16, [STAGES, BK, BN])
    num_k_tiles = tv.cdiv(a.shape[1], BK)
    for stage in tv.static_range(STAGES - 1):
        tv.copy_async(tv.slice_shared(a_stages, [stage, 0, 0], [BM, BK]), a, offsets=[m0, stage * BK])
        tv.copy_async(tv.slice_shared(b_stages, [stage, 0, 0], [BK, BN]), b, offsets=[stage * BK, n0])
        tv.copy_async_commit()
    accumulator = tv.register_tensor(tv.float32, [BM, BN], init=0.0)
    for k_tile in range(num_k_tiles):
        ahead = k_tile + STAGES - 1
        tv.copy_async(
            tv.slice_shared(a_stages, [ahead % STAGES, 0, 0], [BM, BK]), a, offsets=[m0, ahead * BK]
        )
        tv.copy_async(
            tv.slice_shared(b_stages, [ahead % STAGES, 0, 0], [BK, BN]), b, offsets=[ahead * BK, n0]
        )
        tv.copy_async_commit()
        tv.copy_async_wait(STAGES - 1)
        tv.sync()
        a_tile = tv.load_shared(tv.slice_shared(a_stages, [k_tile % STAGES, 0, 0], [BM, BK]))
        b_tile = tv.load_shared(tv.slice_shared(b_stages, [k_tile % STAGES, 0, 0], [BK, BN]))
        accumulator = tv.dot(a_tile, b_tile, accumulator)
        tv.sync()
    tv.copy_async_wait(0)
    tv.store_global(c, tv.cast(accumulator, tv.float16), offsets=[m0, n0])


def main() -> None:
    generator = torch.Generator().manual_seed(2)
    m, n, k = 70, 96, 200  # ragged: no size is a multiple of its tile
    block_m, block_n, block_k = 32, 32, 32
    a = torch.randn(m, k, generator=generator).half().to(DEVICE)
    b = torch.randn(k, n, generator=generator).half().to(DEVICE)
    c = torch.full((m, n), float("nan"), dtype=torch.float16).to(DEVICE)
    grid = (tv.cdiv(m, block_m), tv.cdiv(n, block_n))
    matmul[grid](a, b, c, BM=block_m, BN=block_n, BK=block_k, STAGES=2)
    expected = (a.double() @ b.double()).half()
    # float32 accumulation over k=200 terms, then one rounding to float16: within one float16 ulp
    torch.testing.assert_close(c, expected, rtol=2e-3, atol=2e-3)
    print(f"matmul: {m}x{n}x{k} float16 matches torch (on {where()})")


def where() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"


if __name__ == "__main__":
    main()

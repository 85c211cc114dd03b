"""An fp16 linear layer, ``y = x @ w.T``, on the tensor cores' warpgroups: tiles of x and w staged in shared
memory by copy_async, multiplied there by dots of shared tiles (``wgmma`` on an H100 or H200, ``mma.sync``
elsewhere), each left running (``wait=False``) while the next iteration's copies start."""

import torch

import tilevm as tv

# on a CUDA GPU when there is one, else on the CPU through the SIMT interpreter (the same lowered program)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@tv.kernel(num_warps=8)
def linear(
    x: tv.Tensor[tv.float16, 2],
    w: tv.Tensor[tv.float16, 2],
    y: tv.Tensor[tv.float16, 2],
    BM: tv.constexpr,
    BN: tv.constexpr,
    BK: tv.constexpr,
    STAGES: tv.constexpr,
):
    # BK is at most 64: a row of 128 bytes, the widest the tensor cores read from shared memory
    m0 = tv.block_idx(0) * BM
    n0 = tv.block_idx(1) * BN
    x_stages = tv.shared_tensor(tv.float16, [STAGES, BM, BK])
    w_stages = tv.shared_tensor(tv.float16, [STAGES, BN, BK])
    num_k_tiles = tv.cdiv(x.shape[1], BK)
    # the copies run STAGES - 2 tiles ahead: one stage is multiplied, and the dot before it may still run
    for stage in tv.static_range(STAGES - 2):
        tv.copy_async(tv.slice_shared(x_stages, [stage, 0, 0], [BM, BK]), x, offsets=[m0, stage * BK])
        tv.copy_async(tv.slice_shared(w_stages, [stage, 0, 0], [BN, BK]), w, offsets=[n0, stage * BK])
        tv.copy_async_commit()
    accumulator = tv.register_tensor(tv.float32, [BM, BN], init=0.0)
    for k_tile in range(num_k_tiles):
        tv.copy_async_wait(STAGES - 3)  # this tile's copies are done
        tv.dot_wait(1)  # the dot of k_tile - 2 is done: its stage may be filled again
        tv.sync()
        ahead = k_tile + STAGES - 2
        tv.copy_async(
            tv.slice_shared(x_stages, [ahead % STAGES, 0, 0], [BM, BK]), x, offsets=[m0, ahead * BK]
        )
        tv.copy_async(
            tv.slice_shared(w_stages, [ahead % STAGES, 0, 0], [BN, BK]), w, offsets=[n0, ahead * BK]
        )
        tv.copy_async_commit()
        x_tile = tv.slice_shared(x_stages, [k_tile % STAGES, 0, 0], [BM, BK])
        w_tile = tv.permute(tv.slice_shared(w_stages, [k_tile % STAGES, 0, 0], [BN, BK]), [1, 0])
        accumulator = tv.dot(x_tile, w_tile, accumulator, wait=False)
    tv.dot_wait(0)
    tv.copy_async_wait(0)
    tv.store_global(y, tv.cast(accumulator, tv.float16), offsets=[m0, n0])


def main() -> None:
    generator = torch.Generator().manual_seed(3)
    m, n, k = 150, 100, 200  # ragged: no size is a multiple of its tile
    block_m, block_n, block_k = 128, 64, 64
    x = torch.randn(m, k, generator=generator).half().to(DEVICE)
    w = torch.randn(n, k, generator=generator).half().to(DEVICE)
    y = torch.full((m, n), float("nan"), dtype=torch.float16).to(DEVICE)
    grid = (tv.cdiv(m, block_m), tv.cdiv(n, block_n))
    linear[grid](x, w, y, BM=block_m, BN=block_n, BK=block_k, STAGES=3)
    expected = (x.double() @ w.double().T).half()
    # float32 accumulation over k=200 terms, then one rounding to float16: within one float16 ulp
    torch.testing.assert_close(y, expected, rtol=2e-3, atol=2e-3)
    print(f"linear: {m}x{n}x{k} float16 matches torch (on {where()})")


def where() -> str:
    return torch.cuda.get_device_name() if DEVICE == "cuda" else "the CPU"


if __name__ == "__main__":
    main()

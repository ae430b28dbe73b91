// Flash prefill for Hopper, head dim 256, e4m3 Q, K, V^T in, bf16 out, per-(batch, KV head)
// descales (kernels/include/attn_hopper.cuh; the sizes are argued in docs/perf-hopper.md).
#include "attn_hopper.cuh"

namespace {
// Two consumer warpgroups (128-row query tiles), 128-key tiles: O (128) + S (64) + P (16)
// registers within 240. Shared memory: Q 32, O 64 and two stages of K and V^T (2 x 64 KiB) =
// 224 KiB of the 227.
using Traits = attn::HopperTraits<attn::HopperE4m3, 256, 128, 128, 2>;
}  // namespace

ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d256_none, Traits, ATTN_MASK_NONE)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d256_causal, Traits, ATTN_MASK_CAUSAL)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d256_window, Traits, ATTN_MASK_WINDOW)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d256_sparse, Traits, ATTN_MASK_BLOCK_SPARSE)

// Flash prefill for Hopper, head dim 64, e4m3 Q, K, V^T in, bf16 out, per-(batch, KV head)
// descales (kernels/include/attn_hopper.cuh; the sizes are argued in docs/perf-hopper.md).
#include "attn_hopper.cuh"

namespace {
// Three consumer warpgroups (192-row query tiles), 128-key tiles: V^T rows are then exactly
// one 128-byte swizzle span; S (64) + P (16) + O (32) registers within 160. Shared memory: Q 12,
// O 24 and three stages of K and V^T (3 x 16 KiB) = 84 KiB.
using Traits = attn::HopperTraits<attn::HopperE4m3, 64, 192, 128, 3>;
}  // namespace

ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d64_none, Traits, ATTN_MASK_NONE)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d64_causal, Traits, ATTN_MASK_CAUSAL)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d64_window, Traits, ATTN_MASK_WINDOW)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d64_sparse, Traits, ATTN_MASK_BLOCK_SPARSE)

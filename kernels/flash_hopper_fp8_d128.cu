// Flash prefill for Hopper, head dim 128, e4m3 Q, K, V^T in, bf16 out, per-(batch, KV head)
// descales (kernels/include/attn_hopper.cuh; the sizes are argued in docs/perf-hopper.md).
#include "attn_hopper.cuh"

namespace {
// Two consumer warpgroups (128-row query tiles), 128-key tiles (V^T rows one 128-byte span):
// S (64) + P (16) + O (64) registers. Shared memory: Q 16, O 32 and three stages of K and V^T
// (3 x 32 KiB) = 144 KiB.
using Traits = attn::HopperTraits<attn::HopperE4m3, 128, 128, 128, 3>;
}  // namespace

ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d128_none, Traits, ATTN_MASK_NONE)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d128_causal, Traits, ATTN_MASK_CAUSAL)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d128_window, Traits, ATTN_MASK_WINDOW)
ATTN_HOPPER_ENTRY(attn_flash_hopper_fp8_d128_sparse, Traits, ATTN_MASK_BLOCK_SPARSE)

// Flash prefill for Hopper, head dim 64, bf16 in and out (kernels/include/attn_hopper.cuh; the
// sizes are argued in docs/perf-hopper.md).
#include "attn_hopper.cuh"

namespace {
// Three consumer warpgroups (192-row query tiles): at d = 64 a 128-row tile does half the work
// per K/V byte of d = 128, so a third warpgroup keeps FLOPs per loaded byte up. 128-key tiles:
// S (64) + P (32) + O (32) registers within the 160 each consumer gets when three share the SM.
// Three stages (Q 24 + 3 x 32 KiB): tiles are short at d = 64, so the ring hides more latency.
using Traits = attn::HopperTraits<attn::HopperBf16, 64, 192, 128, 3>;
}  // namespace

ATTN_HOPPER_ENTRY(attn_flash_hopper_d64_none, Traits, ATTN_MASK_NONE)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d64_causal, Traits, ATTN_MASK_CAUSAL)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d64_window, Traits, ATTN_MASK_WINDOW)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d64_sparse, Traits, ATTN_MASK_BLOCK_SPARSE)

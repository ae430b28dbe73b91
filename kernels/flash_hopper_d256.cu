// Flash prefill for Hopper, head dim 256, bf16 in and out (kernels/include/attn_hopper.cuh; the
// sizes are argued in docs/perf-hopper.md).
#include "attn_hopper.cuh"

namespace {
// Two consumer warpgroups (128-row query tiles), 80-key tiles: O alone is 128 registers per
// consumer thread, S (40) and P (20) fit beside it, and shared memory holds Q (64 KiB) and two
// K/V stages of 80 keys (2 x 80 KiB) = 224 KiB of the 227.
using Traits = attn::HopperTraits<attn::HopperBf16, 256, 128, 80, 2>;
}  // namespace

ATTN_HOPPER_ENTRY(attn_flash_hopper_d256_none, Traits, ATTN_MASK_NONE)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d256_causal, Traits, ATTN_MASK_CAUSAL)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d256_window, Traits, ATTN_MASK_WINDOW)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d256_sparse, Traits, ATTN_MASK_BLOCK_SPARSE)

// Flash prefill for Hopper, head dim 128, bf16 in and out (kernels/include/attn_hopper.cuh; the
// sizes are argued in docs/perf-hopper.md).
#include "attn_hopper.cuh"

namespace {
// Two consumer warpgroups of 64 rows (128-row query tiles). No mask: 176-key tiles, the widest
// whose S (88), P (44) and O (64) registers fit a consumer's 240 with the softmax's temporaries,
// and whose two K/V stages fit beside Q (32 + 2 x 88 = 208 KiB). Masked: 128-key tiles, finer
// skipping along the diagonal and the window edges.
using TraitsNone = attn::HopperTraits<attn::HopperBf16, 128, 128, 176, 2>;
using TraitsMasked = attn::HopperTraits<attn::HopperBf16, 128, 128, 128, 2>;
}  // namespace

ATTN_HOPPER_ENTRY(attn_flash_hopper_d128_none, TraitsNone, ATTN_MASK_NONE)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d128_causal, TraitsMasked, ATTN_MASK_CAUSAL)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d128_window, TraitsMasked, ATTN_MASK_WINDOW)
ATTN_HOPPER_ENTRY(attn_flash_hopper_d128_sparse, TraitsMasked, ATTN_MASK_BLOCK_SPARSE)

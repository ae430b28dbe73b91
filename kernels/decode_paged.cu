// Serving decode with a bf16 paged cache, and the combine of split sequences (both caches): the
// instances of decode_paged.cuh. The fp8 instances are in decode_paged_fp8.cu (a second nvcc run
// in parallel). Sizes: a stage is one 64-key tile of K and V; the stages in flight per SM (CTAs
// per SM x stages) cover HBM latency at 4.8 TB/s (docs/perf-decode.md).
#include "decode_paged.cuh"

namespace {
// r16 d64: 3 stages of 16 KiB, 67 KiB per CTA, 3 CTAs per SM (144 KiB in flight per SM).
using R16D64 = paged::PagedTraits<64, 2, 1, 4, 3, 3>;
// r16 d128: 2 stages of 32 KiB, 101 KiB per CTA, 2 CTAs per SM (128 KiB in flight).
using R16D128 = paged::PagedTraits<128, 2, 1, 4, 2, 2>;
// r128: one CTA per SM (registers, Q of 128 rows); 6 stages of 16 KiB (d64), 4 of 32 KiB (d128).
using R128D64 = paged::PagedTraits<64, 2, 8, 1, 6, 1>;
using R128D128 = paged::PagedTraits<128, 2, 8, 1, 4, 1>;
}  // namespace

PAGED_ENTRY(attn_decode_paged_bf16_d64_r16_none, R16D64, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_bf16_d64_r16_causal, R16D64, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_bf16_d64_r16_window, R16D64, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_bf16_d64_r16_sparse, R16D64, ATTN_MASK_BLOCK_SPARSE)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r16_none, R16D128, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r16_causal, R16D128, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r16_window, R16D128, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r16_sparse, R16D128, ATTN_MASK_BLOCK_SPARSE)
PAGED_ENTRY(attn_decode_paged_bf16_d64_r128_none, R128D64, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_bf16_d64_r128_causal, R128D64, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_bf16_d64_r128_window, R128D64, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_bf16_d64_r128_sparse, R128D64, ATTN_MASK_BLOCK_SPARSE)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r128_none, R128D128, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r128_causal, R128D128, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r128_window, R128D128, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_bf16_d128_r128_sparse, R128D128, ATTN_MASK_BLOCK_SPARSE)

// grid (num_seqs, heads), block 32 * attn::COMBINE_WARPS.
extern "C" __global__ void __launch_bounds__(32 * attn::COMBINE_WARPS) attn_decode_paged_combine_d64(const PagedDecodeParams p) {
  paged::paged_combine<64>(p);
}
extern "C" __global__ void __launch_bounds__(32 * attn::COMBINE_WARPS) attn_decode_paged_combine_d128(const PagedDecodeParams p) {
  paged::paged_combine<128>(p);
}

// Serving decode with an fp8 (e4m3) paged cache: the instances of decode_paged.cuh (the combine
// is in decode_paged.cu). A stage is one 64-key tile of K and V codes and their scales (half a
// bf16 stage, plus 256 bytes), so twice as many stages keep the same bytes in flight.
#include "decode_paged.cuh"

namespace {
// r16 d64: 6 stages of 8.25 KiB, 68 KiB per CTA, 3 CTAs per SM (148 KiB in flight per SM).
using F16D64 = paged::PagedTraits<64, 1, 1, 4, 6, 3>;
// r16 d128: 4 stages of 16.25 KiB, 102 KiB per CTA, 2 CTAs per SM (130 KiB in flight).
using F16D128 = paged::PagedTraits<128, 1, 1, 4, 4, 2>;
// r128: one CTA per SM; 8 stages either way.
using F128D64 = paged::PagedTraits<64, 1, 8, 1, 8, 1>;
using F128D128 = paged::PagedTraits<128, 1, 8, 1, 8, 1>;
}  // namespace

PAGED_ENTRY(attn_decode_paged_fp8_d64_r16_none, F16D64, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_fp8_d64_r16_causal, F16D64, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_fp8_d64_r16_window, F16D64, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_fp8_d64_r16_sparse, F16D64, ATTN_MASK_BLOCK_SPARSE)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r16_none, F16D128, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r16_causal, F16D128, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r16_window, F16D128, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r16_sparse, F16D128, ATTN_MASK_BLOCK_SPARSE)
PAGED_ENTRY(attn_decode_paged_fp8_d64_r128_none, F128D64, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_fp8_d64_r128_causal, F128D64, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_fp8_d64_r128_window, F128D64, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_fp8_d64_r128_sparse, F128D64, ATTN_MASK_BLOCK_SPARSE)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r128_none, F128D128, ATTN_MASK_NONE)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r128_causal, F128D128, ATTN_MASK_CAUSAL)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r128_window, F128D128, ATTN_MASK_WINDOW)
PAGED_ENTRY(attn_decode_paged_fp8_d128_r128_sparse, F128D128, ATTN_MASK_BLOCK_SPARSE)

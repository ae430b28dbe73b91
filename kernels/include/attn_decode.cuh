// Decode-only pieces of the split-KV decode kernels (kernels/decode.cu); the tiles, ring, mask
// objects and warp step are the shared ones (attn_tile.cuh, attn_tile_mask.cuh, attn_warp.cuh).
#pragma once
#include "attn_params.h"
#include "attn_tile_mask.cuh"

namespace attn {

// The query tokens of one decode call (seq_q <= DECODE_MAX_SEQ_Q) form a single mask query tile
// of this many rows, so one mask object lists the key tiles every token needs.
constexpr int DECODE_MAX_SEQ_Q = 16;

// Keys that at least one query token sees, as one interval [lo, hi): the K/V rows a decode CTA
// must read. Row-band masks: the rows' intervals move right monotonically and touch (see
// RowBandMask), so the union runs from the first row's lo to the last row's hi. Block-sparse:
// every visited tile is whole blocks, so only the seq_k end bounds it. Rows outside the union
// are zero-filled without a global read (they are masked element-wise anyway).
template <int KIND>
__device__ __forceinline__ KeyRange decode_key_union(const AttnParams& p) {
  if (KIND == ATTN_MASK_BLOCK_SPARSE) return KeyRange{0, p.seq_k};
  using RB = RowBandMask<KIND == ATTN_MASK_BLOCK_SPARSE ? ATTN_MASK_NONE : KIND, DECODE_MAX_SEQ_Q, 64>;
  return KeyRange{RB::key_range(p, 0).lo, RB::key_range(p, p.seq_q - 1).hi};
}

// The Q rows of a decode CTA for SwizzledTile::cp_async_rows: row gr is (token gr / group, query
// head head0 + gr % group) of the KV head's group (GQA packing); rows >= rows are padding.
struct GqaQueryRows {
  int rows, group, head0;
  int64_t row_stride, head_stride;
  __device__ __forceinline__ bool valid(int gr) const { return gr < rows; }
  __device__ __forceinline__ int64_t offset(int gr) const {
    return (int64_t)(gr / group) * row_stride + (int64_t)(head0 + gr % group) * head_stride;
  }
};

}  // namespace attn

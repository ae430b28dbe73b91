// Masks for tiled attention: one object per query tile of BM rows says which key tiles of BN keys
// to visit, whether a visited tile is fully visible (the step skips the element mask) or partial,
// and which keys each row sees inside a partial tile; mask_scores applies that to C-fragment
// scores. The semantics are those of attn_mask.cuh / src/mask.rs (bottom-right aligned windows,
// CSR block layouts), and the key tiles each object visits are Mask::tile_counts(seq_q, seq_k,
// BM, BN) on the host (tests/flash.rs checks both against Mask::classify_tile).
//
// Every mask object has the same interface, so one templated mainloop serves all masks:
//   init(p, q_tile)        the query tile's key tiles (all of them: split-KV decode takes runs of
//                          this list, it never restricts the object)
//   num_key_tiles()        how many key tiles the query tile visits
//   key_tile(p, n)         the n-th visited key tile (ascending), n < num_key_tiles()
//   fully_visible(p, kt)   every (row < seq_q, key) of tile kt is visible and in range
//   row_keys(p, i)         the keys query row i may see inside a visited tile (clamped to seq_k)
// Mask objects are block-uniform: every thread computes the same values (warp-uniform loads
// only). Nothing here depends on the MMA instruction: a wgmma kernel uses the same objects, and
// mask_scores fits its accumulators too (each warp's rows of a wgmma accumulator are C fragments).
#pragma once
#include <math.h>
#include "attn_mask.cuh"
#include "attn_params.h"
#include "attn_ptx.cuh"

namespace attn {

// None, causal and sliding window: every row sees one interval of keys, and both its ends are
// non-decreasing in the row (bottom-right alignment moves the interval right by one per row).
// So a query tile [q0, q_last] sees the union [lo(q0), hi(q_last)), which has no gaps (consecutive
// non-empty rows overlap or touch; empty rows sit at the top (lo = hi = 0) or at the bottom
// (lo = hi = seq_k) and do not widen it), and a tile [k0, k1) is fully visible to all rows iff
// lo(q_last) <= k0 and k1 <= hi(q0).
template <int KIND, int BM, int BN>
struct RowBandMask {
  static_assert(KIND == ATTN_MASK_NONE || KIND == ATTN_MASK_CAUSAL || KIND == ATTN_MASK_WINDOW, "row-band masks");
  static constexpr int kBM = BM, kBN = BN;
  int kt_begin, count;
  int full_lo, full_hi;  // tile [k0, k0 + BN) is fully visible iff full_lo <= k0 and k0 + BN <= full_hi

  __device__ __forceinline__ static KeyRange key_range(const AttnParams& p, int i) {
    return attn_key_range_of<KIND>(p, i);
  }

  // 0 <= lo <= hi <= seq_k, so [lo / BN, ceil(hi / BN)) are key tiles that exist.
  __device__ __forceinline__ void init(const AttnParams& p, int q_tile) {
    const int q0 = q_tile * BM, q_last = min(q0 + BM, p.seq_q) - 1;
    const KeyRange first = key_range(p, q0), last = key_range(p, q_last);
    kt_begin = first.lo / BN;
    const int kt_end = ceil_div(last.hi, BN);
    // (kt_end > kt_begin follows from hi > lo; stated, it lets the compiler select, not branch.)
    count = (last.hi > first.lo && kt_end > kt_begin) ? kt_end - kt_begin : 0;
    // Every row sees [lo(q_last), hi(q0)); full_hi <= seq_k, so the key tail is never "full"
    // (it is masked element-wise).
    full_lo = last.lo;
    full_hi = KIND == ATTN_MASK_NONE ? p.seq_k : first.hi;
  }
  __device__ __forceinline__ int num_key_tiles() const { return count; }
  __device__ __forceinline__ int key_tile(const AttnParams&, int n) const { return kt_begin + n; }
  __device__ __forceinline__ bool fully_visible(const AttnParams&, int kt) const {
    const int k0 = kt * BN;
    return (KIND == ATTN_MASK_NONE || full_lo <= k0) && k0 + BN <= full_hi;
  }
  __device__ __forceinline__ KeyRange row_keys(const AttnParams& p, int i) const { return key_range(p, i); }
};

// Block-sparse CSR whose blocks are whole tiles: sparse_block_q % BM == 0 and sparse_block_k %
// BN == 0 (the host plan rejects other layouts). A query tile then lies in one block row r, a
// present block column c covers key tiles [c*R, (c+1)*R) with R = block_k / BN, and every visited
// tile is entirely visible (only the seq_k tail of the last block column is masked). Columns are
// sorted, so only the last entry of a row can be the truncated final block column.
template <int BM, int BN>
struct BlockSparseMask {
  static constexpr int kBM = BM, kBN = BN;
  const int* cols;  // this block row's sorted columns
  int tiles_per_block, count;

  __device__ __forceinline__ void init(const AttnParams& p, int q_tile) {
    const int r = (q_tile * BM) / p.sparse_block_q;
    const int* row_ptr = reinterpret_cast<const int*>(p.block_row_ptr);
    const int* col_idx = reinterpret_cast<const int*>(p.block_col_idx);
    tiles_per_block = p.sparse_block_k / BN;
    const int begin = ld_warp_uniform(row_ptr + r), end = ld_warp_uniform(row_ptr + r + 1);
    cols = col_idx + begin;
    count = 0;
    if (end > begin) {
      // The last column's tiles end past the key tiles that exist when its block is truncated.
      const int last_end = (ld_warp_uniform(col_idx + end - 1) + 1) * tiles_per_block;
      count = (end - begin) * tiles_per_block - (last_end - min(last_end, ceil_div(p.seq_k, BN)));
    }
  }
  __device__ __forceinline__ int num_key_tiles() const { return count; }
  __device__ __forceinline__ int key_tile(const AttnParams&, int n) const {
    return ld_warp_uniform(cols + n / tiles_per_block) * tiles_per_block + n % tiles_per_block;
  }
  __device__ __forceinline__ bool fully_visible(const AttnParams& p, int kt) const { return (kt + 1) * BN <= p.seq_k; }
  __device__ __forceinline__ KeyRange row_keys(const AttnParams& p, int) const { return KeyRange{0, p.seq_k}; }
};

template <int KIND, int BM, int BN>
struct TileMaskOf {
  using type = RowBandMask<KIND, BM, BN>;
};
template <int BM, int BN>
struct TileMaskOf<ATTN_MASK_BLOCK_SPARSE, BM, BN> {
  using type = BlockSparseMask<BM, BN>;
};

// The mask object of a mask kind, for kernels templated on the kind.
template <int KIND, int BM, int BN>
using TileMask = typename TileMaskOf<KIND, BM, BN>::type;

// -inf on the scores of row half h (fragment row group or group + 8) whose key is not in `keys`.
// Column 2t (+1) of n8 block nb holds key col0 + 8 nb + 2t (+1).
template <int NB>
__device__ __forceinline__ void mask_scores(float (&s)[NB][4], int h, KeyRange keys, int col0) {
  const int t = lane_id() & 3;
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    const int j = col0 + nb * 8 + 2 * t;
    if (j < keys.lo || j >= keys.hi) s[nb][2 * h] = -INFINITY;
    if (j + 1 < keys.lo || j + 1 >= keys.hi) s[nb][2 * h + 1] = -INFINITY;
  }
}

}  // namespace attn

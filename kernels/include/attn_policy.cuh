// Mask policies for tiled attention: for one query tile of BM rows, which key tiles of BN keys to
// visit, whether a visited tile is fully visible (no element masking) or partial, and the key
// range [lo, hi) of each row for masking a partial tile element-wise. The semantics are those of
// attn_mask.cuh / src/mask.rs (bottom-right aligned windows, CSR block layouts); the key-tile
// count of each policy equals Mask::tile_counts(seq_q, seq_k, BM, BN) on the host.
//
// Every policy has the same interface, so one templated mainloop serves all masks:
//   init(p, q_tile, kt_min, kt_max)  key tiles restricted to [kt_min, kt_max) (split-KV decode
//                                    passes its split; prefill passes [0, num_key_tiles))
//   num_tiles()                      how many key tiles this query tile visits
//   tile(p, n)                       the n-th visited key tile (ascending), n < num_tiles()
//   full(p, kt)                      every (row < seq_q, key) of the tile is visible and in range
//   row_keys(p, i)                   keys row i may see inside a visited tile (clamped to seq_k)
// Policies are block-uniform: every thread computes the same values (warp-uniform loads only).
#pragma once
#include "attn_mask.cuh"
#include "attn_params.h"

namespace attn {

__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// None, causal and sliding window: every row sees one interval of keys, and both its ends are
// non-decreasing in the row (bottom-right alignment moves the interval right by one per row).
// So a query tile [q0, q_last] sees the union [lo(q0), hi(q_last)), which has no gaps (consecutive
// non-empty rows overlap or touch; empty rows sit at the top (lo = hi = 0) or at the bottom
// (lo = hi = seq_k) and do not widen it), and a tile [k0, k1) is fully visible to all rows iff
// lo(q_last) <= k0 and k1 <= hi(q0).
template <int KIND, int BM, int BN>
struct RowBandPolicy {
  static_assert(KIND == ATTN_MASK_NONE || KIND == ATTN_MASK_CAUSAL || KIND == ATTN_MASK_WINDOW, "row-band masks");
  int q0, q_last, kt_begin, count;

  __device__ __forceinline__ static KeyRange key_range(const AttnParams& p, int i) {
    return attn_key_range_of<KIND>(p, i);
  }

  __device__ __forceinline__ void init(const AttnParams& p, int q_tile, int kt_min, int kt_max) {
    q0 = q_tile * BM;
    q_last = min(q0 + BM, p.seq_q) - 1;
    const int lo = key_range(p, q0).lo, hi = key_range(p, q_last).hi;
    kt_begin = max(lo / BN, kt_min);
    const int kt_end = min(ceil_div(hi, BN), kt_max);
    count = (hi > lo && kt_end > kt_begin) ? kt_end - kt_begin : 0;
  }
  __device__ __forceinline__ int num_tiles() const { return count; }
  __device__ __forceinline__ int tile(const AttnParams&, int n) const { return kt_begin + n; }
  __device__ __forceinline__ bool full(const AttnParams& p, int kt) const {
    const int k0 = kt * BN, k1 = k0 + BN;
    if (k1 > p.seq_k) return false;  // the key tail is masked element-wise
    if (KIND == ATTN_MASK_NONE) return true;
    return key_range(p, q_last).lo <= k0 && k1 <= key_range(p, q0).hi;
  }
  __device__ __forceinline__ KeyRange row_keys(const AttnParams& p, int i) const { return key_range(p, i); }
};

// Block-sparse CSR whose blocks are whole tiles: sparse_block_q % BM == 0 and sparse_block_k %
// BN == 0 (the host plan rejects other layouts). A query tile then lies in one block row r, a
// present block column c covers key tiles [c*R, (c+1)*R) with R = block_k / BN, and every visited
// tile is entirely visible (only the seq_k tail of the last block column is masked). Columns are
// sorted, so only the last entry of a row can be the truncated final block column.
template <int BM, int BN>
struct BlockSparsePolicy {
  const int* cols;  // this block row's sorted columns, restricted to [kt_min, kt_max)
  int tiles_per_block, first_skip, count;

  // Warp-uniform scalar load: lane 0 reads, the warp shares it (one 4-byte load per warp instead
  // of 32 redundant ones, which would also inflate the global-bytes counters).
  __device__ __forceinline__ static int load_uniform(const int* ptr) {
    const int lane = threadIdx.x & 31;
    int v = 0;
    if (lane == 0) v = *ptr;
    return __shfl_sync(0xffffffffu, v, 0);
  }

  __device__ __forceinline__ void init(const AttnParams& p, int q_tile, int kt_min, int kt_max) {
    const int r = (q_tile * BM) / p.sparse_block_q;
    const int* row_ptr = reinterpret_cast<const int*>(p.block_row_ptr);
    const int* col_idx = reinterpret_cast<const int*>(p.block_col_idx);
    tiles_per_block = p.sparse_block_k / BN;
    const int num_kt = ceil_div(p.seq_k, BN);
    kt_max = min(kt_max, num_kt);
    int begin = load_uniform(row_ptr + r), end = load_uniform(row_ptr + r + 1);
    // Restrict to the key-tile window: the first column whose tiles reach kt_min, the last whose
    // tiles start before kt_max (binary searches; a full-range prefill skips them).
    if (kt_min > 0) {
      int lo = begin, hi = end;
      while (lo < hi) {
        const int mid = (lo + hi) >> 1;
        if ((load_uniform(col_idx + mid) + 1) * tiles_per_block <= kt_min) lo = mid + 1; else hi = mid;
      }
      begin = lo;
    }
    if (kt_max < num_kt) {
      int lo = begin, hi = end;
      while (lo < hi) {
        const int mid = (lo + hi) >> 1;
        if (load_uniform(col_idx + mid) * tiles_per_block < kt_max) lo = mid + 1; else hi = mid;
      }
      end = lo;
    }
    cols = col_idx + begin;
    count = 0;
    first_skip = 0;
    if (end > begin) {
      const int first_kt = load_uniform(cols) * tiles_per_block;
      const int last_kt_end = min((load_uniform(col_idx + end - 1) + 1) * tiles_per_block, kt_max);
      first_skip = max(kt_min - first_kt, 0);
      count = (end - begin) * tiles_per_block - first_skip - ((load_uniform(col_idx + end - 1) + 1) * tiles_per_block -
                                                              last_kt_end);
    }
  }
  __device__ __forceinline__ int num_tiles() const { return count; }
  __device__ __forceinline__ int tile(const AttnParams&, int n) const {
    const int m = n + first_skip;
    return load_uniform(cols + m / tiles_per_block) * tiles_per_block + m % tiles_per_block;
  }
  __device__ __forceinline__ bool full(const AttnParams& p, int kt) const { return (kt + 1) * BN <= p.seq_k; }
  __device__ __forceinline__ KeyRange row_keys(const AttnParams& p, int) const { return KeyRange{0, p.seq_k}; }
};

// The policy of a mask kind, for kernels templated on the kind.
template <int KIND, int BM, int BN>
struct MaskPolicy {
  using type = RowBandPolicy<KIND, BM, BN>;
};
template <int BM, int BN>
struct MaskPolicy<ATTN_MASK_BLOCK_SPARSE, BM, BN> {
  using type = BlockSparsePolicy<BM, BN>;
};

}  // namespace attn

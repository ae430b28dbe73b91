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
  // Sequential access (the interface every mask object of a Hopper producer has).
  __device__ __forceinline__ int first_key_tile(const AttnParams&) const { return kt_begin; }
  __device__ __forceinline__ int next_key_tile(const AttnParams&, int kt) const { return kt + 1; }
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

// Block-sparse CSR with tiles that are not whole blocks (the Hopper kernels' BM x BN, e.g.
// 128 x 176 with 64-token blocks). The rule: block_q is a multiple of 64 (so each 64-row
// warpgroup slab of a query tile lies in one block row), block_k a multiple of 64; a query tile
// may span several block rows (BM / 64 at most) and a key tile may cut block columns. The query
// tile visits the key tiles that intersect a present block of any of its rows: the union, listed
// ascending by merging the rows' sorted column lists (Mask::tile_counts on the host counts the
// same union). A visited tile is then masked per warpgroup slab by BlockSparseRowCursor.
// Sequential access only (first_key_tile / next_key_tile); `init` counts the union once.
template <int BM, int BN>
struct BlockSparseTileUnion {
  static constexpr int kBM = BM, kBN = BN;
  static constexpr int kMaxRows = BM / 64;
  static constexpr int kEnd = 0x7fffffff;
  const int* col_idx;
  int ptr[kMaxRows], end[kMaxRows], begin[kMaxRows];
  int count;

  // Key tiles [lo, hi] that block column c intersects (its keys clamped to seq_k).
  __device__ __forceinline__ static int tile_lo(const AttnParams& p, int c) { return c * p.sparse_block_k / BN; }
  __device__ __forceinline__ static int tile_hi(const AttnParams& p, int c) {
    return (min((c + 1) * p.sparse_block_k, p.seq_k) - 1) / BN;
  }

  __device__ __forceinline__ void init(const AttnParams& p, int q_tile) {
    const int* row_ptr = reinterpret_cast<const int*>(p.block_row_ptr);
    col_idx = reinterpret_cast<const int*>(p.block_col_idx);
    const int q0 = q_tile * BM, q_last = min(q0 + BM, p.seq_q) - 1;
    const int r0 = q0 / p.sparse_block_q, r1 = q_last / p.sparse_block_q;
#pragma unroll
    for (int i = 0; i < kMaxRows; ++i) {
      const bool live = r0 + i <= r1;
      begin[i] = live ? row_ptr[r0 + i] : 0;
      end[i] = live ? row_ptr[r0 + i + 1] : 0;
      ptr[i] = begin[i];
    }
    count = 0;
    for (int kt = first_key_tile(p); kt != kEnd; kt = next_key_tile(p, kt)) ++count;
#pragma unroll
    for (int i = 0; i < kMaxRows; ++i) ptr[i] = begin[i];
  }
  __device__ __forceinline__ int num_key_tiles() const { return count; }
  __device__ __forceinline__ int first_key_tile(const AttnParams& p) { return next_key_tile(p, -1); }
  // The smallest visited tile after `last` (kEnd when none): each row skips the columns whose
  // tiles all lie at or before `last`; its next column then offers max(its first tile, last + 1).
  __device__ __forceinline__ int next_key_tile(const AttnParams& p, int last) {
    int best = kEnd;
#pragma unroll
    for (int i = 0; i < kMaxRows; ++i) {
      while (ptr[i] < end[i] && tile_hi(p, col_idx[ptr[i]]) <= last) ++ptr[i];
      if (ptr[i] < end[i]) best = min(best, max(tile_lo(p, col_idx[ptr[i]]), last + 1));
    }
    return best;
  }
};

// The consumer side of a block-sparse tile union: which keys of each visited key tile one block
// row shows, for tiles visited in ascending order (one pass over the row's sorted columns). The 8
// keys of an n8 block share one block column (block_k % 64 == 0), so a tile's visibility is one
// bit per n8 block (`shown`), plus the seq_k tail.
template <int BN>
struct BlockSparseRowCursor {
  static_assert(BN % 8 == 0 && BN / 8 <= 32, "one bit per n8 block of the tile");
  int ptr, end;  // this row's remaining columns: col_idx[ptr .. end) (indices, not pointers:
                 // the column array's address stays in the parameter space, not in registers)
  uint32_t shown;  // bit nb: the n8 block nb of the current tile lies in a present block

  // Row `row` of the queries (the warpgroup slab's first row; the slab lies in one block row).
  // A slab past seq_q sees nothing (its rows are neither computed into outputs nor in the CSR).
  __device__ __forceinline__ void init(const AttnParams& p, int row) {
    const int* row_ptr = reinterpret_cast<const int*>(p.block_row_ptr);
    ptr = end = 0;
    if (row < p.seq_q) {
      const int r = row / p.sparse_block_q;
      ptr = ld_warp_uniform(row_ptr + r);
      end = ld_warp_uniform(row_ptr + r + 1);
    }
  }
  // Moves to key tile kt (ascending calls); returns whether every key of the tile is in range and
  // in a present block (then no element mask is needed).
  __device__ __forceinline__ bool visit(const AttnParams& p, int kt) {
    const int* cols = reinterpret_cast<const int*>(p.block_col_idx);
    const int bk = p.sparse_block_k;
    const int k0 = kt * BN, k1 = min(k0 + BN, p.seq_k);
    const int c_lo = k0 / bk, c_hi = (k1 - 1) / bk;
    int c = ptr < end ? ld_warp_uniform(cols + ptr) : 0x7fffffff;
    while (c < c_lo) {
      ++ptr;
      c = ptr < end ? ld_warp_uniform(cols + ptr) : 0x7fffffff;
    }
    uint32_t bits = 0;  // bit i: block column c_lo + i is present (at most BN / 64 + 1 of them)
    for (int i = ptr; c <= c_hi;) {
      bits |= 1u << (c - c_lo);
      ++i;
      c = i < end ? ld_warp_uniform(cols + i) : 0x7fffffff;
    }
    shown = 0;
    int col = 0, next = (c_lo + 1) * bk;  // first key of block column c_lo + col + 1
#pragma unroll
    for (int nb = 0; nb < BN / 8; ++nb) {
      if (k0 + 8 * nb >= next) {  // at most one boundary per 8 keys
        ++col;
        next += bk;
      }
      shown |= ((bits >> col) & 1u) << nb;
    }
    return k0 + BN <= p.seq_k && bits == (1u << (c_hi - c_lo + 1)) - 1;
  }
  // -inf on the C-fragment scores (NB n8 blocks, both row halves) of keys outside the present
  // blocks or past seq_k.
  template <int NB>
  __device__ __forceinline__ void mask_scores(float (&s)[NB][4], const AttnParams& p, int kt) const {
    const int room = p.seq_k - kt * BN - 2 * (lane_id() & 3);  // keys 8nb + 2t + e exist iff 8nb + e < room
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (!((shown >> nb) & 1u) || 8 * nb + (e & 1) >= room) s[nb][e] = -INFINITY;
      }
    }
  }
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

// ---------------------------------------------------------------------------------------------
// The Hopper kernels' mask objects: the one a producer walks (key tiles of a BM-row query tile,
// ascending: first_key_tile / next_key_tile, num_key_tiles) and the one a consumer warpgroup asks
// about its 64-row slab of the query tile for each visited key tile (visit: fully visible?
// mask: -inf on the C-fragment scores the slab's rows may not see).
template <int KIND, int BM, int BN>
struct HopperTileMaskOf {
  using type = RowBandMask<KIND, BM, BN>;
};
template <int BM, int BN>
struct HopperTileMaskOf<ATTN_MASK_BLOCK_SPARSE, BM, BN> {
  using type = BlockSparseTileUnion<BM, BN>;
};
template <int KIND, int BM, int BN>
using HopperTileMask = typename HopperTileMaskOf<KIND, BM, BN>::type;

template <int KIND, int BN>
struct SlabMask {
  KeyRange keys[2];     // the keys of this thread's two rows (fixed for the work tile)
  int full_lo, full_hi;  // tile [k0, k0 + BN) is fully visible to the slab iff full_lo <= k0, k0 + BN <= full_hi
  // `first_row`: the slab's first query row; `r_lo`: this thread's first row in the slab (its
  // second is r_lo + 8). Row ranges are computed once per work tile, not per key tile.
  __device__ __forceinline__ void init(const AttnParams& p, int first_row, int r_lo) {
    RowBandMask<KIND, 64, BN> band;
    band.init(p, first_row / 64);
    full_lo = band.full_lo;
    full_hi = band.full_hi;
#pragma unroll
    for (int h = 0; h < 2; ++h) keys[h] = band.row_keys(p, first_row + r_lo + 8 * h);
  }
  __device__ __forceinline__ bool visit(const AttnParams&, int kt) const {
    const int k0 = kt * BN;
    return (KIND == ATTN_MASK_NONE || full_lo <= k0) && k0 + BN <= full_hi;
  }
  template <int NB>
  __device__ __forceinline__ void mask(float (&s)[NB][4], const AttnParams&, int kt) const {
#pragma unroll
    for (int h = 0; h < 2; ++h) mask_scores(s, h, keys[h], kt * BN);
  }
};
template <int BN>
struct SlabMask<ATTN_MASK_BLOCK_SPARSE, BN> {
  BlockSparseRowCursor<BN> cursor;
  __device__ __forceinline__ void init(const AttnParams& p, int first_row, int) { cursor.init(p, first_row); }
  __device__ __forceinline__ bool visit(const AttnParams& p, int kt) { return cursor.visit(p, kt); }
  template <int NB>
  __device__ __forceinline__ void mask(float (&s)[NB][4], const AttnParams& p, int kt) const {
    cursor.mask_scores(s, p, kt);
  }
};

}  // namespace attn

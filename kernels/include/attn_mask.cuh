// Element-wise mask semantics on the device, the same rules as src/mask.rs (bottom-right aligned;
// a negative window bound is unbounded). The dense baseline asks `attn_visible` per element; the
// tiled kernels' mask objects (attn_tile_mask.cuh) decide whole tiles from the same key ranges.
#pragma once
#include "attn_params.h"

// Key range [lo, hi) that a row-band mask (none / causal / window) shows query row i.
struct KeyRange {
  int lo, hi;
  __device__ __forceinline__ bool contains(int j) const { return j >= lo && j < hi; }
};

// KIND known at compile time (the tiled kernels' mask objects). Sequence lengths are validated to
// i32, so pos fits; the window bounds use 64 bits since pos + right + 1 may overflow for right near
// INT_MAX ("unbounded" windows).
template <int KIND>
__device__ __forceinline__ KeyRange attn_key_range_of(const AttnParams& p, int i) {
  const int pos = i + (p.seq_k - p.seq_q);
  int lo = 0, hi = p.seq_k;
  if (KIND == ATTN_MASK_CAUSAL) {
    hi = pos + 1;
  } else if (KIND == ATTN_MASK_WINDOW) {
    if (p.window_left >= 0) lo = (int)max(min((long long)pos - p.window_left, (long long)p.seq_k), 0LL);
    if (p.window_right >= 0) hi = (int)max(min((long long)pos + p.window_right + 1, (long long)p.seq_k), 0LL);
  }
  lo = min(max(lo, 0), p.seq_k);
  hi = min(max(hi, lo), p.seq_k);
  return KeyRange{lo, hi};
}

// The same with the kind read from the parameters (the dense baseline).
__device__ __forceinline__ KeyRange attn_key_range(const AttnParams& p, int i) {
  if (p.mask_kind == ATTN_MASK_CAUSAL) return attn_key_range_of<ATTN_MASK_CAUSAL>(p, i);
  if (p.mask_kind == ATTN_MASK_WINDOW) return attn_key_range_of<ATTN_MASK_WINDOW>(p, i);
  return attn_key_range_of<ATTN_MASK_NONE>(p, i);
}

// Is block (r, c) present in the block-sparse CSR? Rows are sorted: binary search.
__device__ __forceinline__ bool attn_block_present(const AttnParams& p, int r, int c) {
  const int* row_ptr = reinterpret_cast<const int*>(p.block_row_ptr);
  const int* col_idx = reinterpret_cast<const int*>(p.block_col_idx);
  int lo = row_ptr[r], hi = row_ptr[r + 1];
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    const int v = col_idx[mid];
    if (v == c) return true;
    if (v < c) lo = mid + 1; else hi = mid;
  }
  return false;
}

__device__ __forceinline__ bool attn_visible(const AttnParams& p, int i, int j) {
  if (p.mask_kind == ATTN_MASK_BLOCK_SPARSE)
    return attn_block_present(p, i / p.sparse_block_q, j / p.sparse_block_k);
  const KeyRange r = attn_key_range(p, i);
  return j >= r.lo && j < r.hi;
}

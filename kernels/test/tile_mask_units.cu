// Test-only: the mask objects of attn_tile_mask.cuh, run for every query tile, writing the key
// tiles a kernel would visit and whether each is fully visible, so that Rust can compare them with
// Mask::classify_tile (tests/flash.rs). One warp per query tile (the objects use warp-uniform
// loads).
//   out[qt * (1 + 2 * max_tiles)]        number of key tiles
//   out[... + 1 + 2n], out[... + 2 + 2n] n-th key tile, and 1 if the mask object calls it fully visible
#include "attn_params.h"
#include "attn_tile_mask.cuh"

namespace {
template <int KIND, int BM, int BN>
__device__ void visited_tiles(const AttnParams& p, int* out, int max_tiles) {
  attn::TileMask<KIND, BM, BN> mask;
  const int qt = blockIdx.x;
  mask.init(p, qt);
  const int n = mask.num_key_tiles();
  int* o = out + qt * (1 + 2 * max_tiles);
  for (int i = 0; i < n && i < max_tiles; ++i) {
    const int kt = mask.key_tile(p, i);
    const bool full = mask.fully_visible(p, kt);
    if (threadIdx.x == 0) {
      o[1 + 2 * i] = kt;
      o[2 + 2 * i] = full ? 1 : 0;
    }
  }
  if (threadIdx.x == 0) o[0] = n;
}
}  // namespace

#define TILE_MASK_ENTRY(NAME, KIND, BM, BN)                                 \
  extern "C" __global__ void NAME(const AttnParams p, int* out, int max_tiles) { \
    visited_tiles<KIND, BM, BN>(p, out, max_tiles);                         \
  }

// Prefill's query tiles (128 rows, 64 for block-sparse) and decode's (16 rows: every token).
TILE_MASK_ENTRY(tile_mask_none_m128, ATTN_MASK_NONE, 128, 64)
TILE_MASK_ENTRY(tile_mask_causal_m128, ATTN_MASK_CAUSAL, 128, 64)
TILE_MASK_ENTRY(tile_mask_window_m128, ATTN_MASK_WINDOW, 128, 64)
TILE_MASK_ENTRY(tile_mask_sparse_m64, ATTN_MASK_BLOCK_SPARSE, 64, 64)
TILE_MASK_ENTRY(tile_mask_none_m16, ATTN_MASK_NONE, 16, 64)
TILE_MASK_ENTRY(tile_mask_causal_m16, ATTN_MASK_CAUSAL, 16, 64)
TILE_MASK_ENTRY(tile_mask_window_m16, ATTN_MASK_WINDOW, 16, 64)
TILE_MASK_ENTRY(tile_mask_sparse_m16, ATTN_MASK_BLOCK_SPARSE, 16, 64)

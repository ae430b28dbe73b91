// Test-only: the Hopper prefill's mask objects (attn_tile_mask.cuh), without any Hopper
// instruction, so the emulator checks them today (tests/flash_hopper.rs compares with
// Mask::classify_tile and Mask::visible).
//
// hopper_tiles_*: what the producer walks. One warp per query tile of BM rows:
//   out[qt * (1 + max_tiles)]          number of key tiles
//   out[... + 1 + n]                   n-th key tile (first_key_tile, then next_key_tile)
// hopper_slab_*: what a consumer warpgroup masks. Block (slab, kt), 128 threads = the slab's 64
// rows in C fragments: each thread scores 0 for its two rows and every key of tile kt, applies
// visit / mask, and writes per (row, key) 1 if the score survived:
//   full[slab * tiles + kt]                    1 if visit() called the tile fully visible
//   seen[((slab * tiles + kt) * 64 + row) * BN + key]
#include "attn_params.h"
#include "attn_tile_mask.cuh"

namespace {
template <int KIND, int BM, int BN>
__device__ void walked_tiles(const AttnParams& p, int* out, int max_tiles) {
  attn::HopperTileMask<KIND, BM, BN> mask;
  const int qt = blockIdx.x;
  mask.init(p, qt);
  const int n = mask.num_key_tiles();
  int* o = out + qt * (1 + max_tiles);
  int kt = mask.first_key_tile(p);
  for (int i = 0; i < n && i < max_tiles; ++i) {
    if (threadIdx.x == 0) o[1 + i] = kt;
    kt = mask.next_key_tile(p, kt);
  }
  if (threadIdx.x == 0) o[0] = n;
}

template <int KIND, int BN>
__device__ void slab_scores(const AttnParams& p, int* full, unsigned char* seen) {
  const int slab = blockIdx.x, kt = blockIdx.y, tiles = gridDim.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r_lo = 16 * warp + (lane >> 2);
  attn::SlabMask<KIND, BN> m;
  m.init(p, 64 * slab, r_lo);
  float s[BN / 8][4];
#pragma unroll
  for (int nb = 0; nb < BN / 8; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
  const bool is_full = m.visit(p, kt);
  if (!is_full) m.mask(s, p, kt);
  if (threadIdx.x == 0) full[slab * tiles + kt] = is_full ? 1 : 0;
  unsigned char* o = seen + static_cast<size_t>(slab * tiles + kt) * 64 * BN;
#pragma unroll
  for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = r_lo + 8 * (e >> 1), key = 8 * nb + 2 * (lane & 3) + (e & 1);
      o[row * BN + key] = s[nb][e] == 0.f ? 1 : 0;
    }
}
}  // namespace

#define HOPPER_TILES_ENTRY(NAME, KIND, BM, BN)                                    \
  extern "C" __global__ void NAME(const AttnParams p, int* out, int max_tiles) { \
    walked_tiles<KIND, BM, BN>(p, out, max_tiles);                                \
  }
#define HOPPER_SLAB_ENTRY(NAME, KIND, BN)                                                       \
  extern "C" __global__ void NAME(const AttnParams p, int* full, unsigned char* seen) { \
    slab_scores<KIND, BN>(p, full, seen);                                                       \
  }

// The query and key tiles of the instances (kernels/flash_hopper_*.cu): 192 x 128 (d 64), 128 x 176
// (d 128, no mask), 128 x 128 (d 128 masked, e4m3), 128 x 80 (d 256).
#define HOPPER_TILES_KINDS(BM, BN)                                                         \
  HOPPER_TILES_ENTRY(hopper_tiles_none_m##BM##_n##BN, ATTN_MASK_NONE, BM, BN)             \
  HOPPER_TILES_ENTRY(hopper_tiles_causal_m##BM##_n##BN, ATTN_MASK_CAUSAL, BM, BN)         \
  HOPPER_TILES_ENTRY(hopper_tiles_window_m##BM##_n##BN, ATTN_MASK_WINDOW, BM, BN)         \
  HOPPER_TILES_ENTRY(hopper_tiles_sparse_m##BM##_n##BN, ATTN_MASK_BLOCK_SPARSE, BM, BN)
HOPPER_TILES_KINDS(192, 128)
HOPPER_TILES_KINDS(128, 176)
HOPPER_TILES_KINDS(128, 128)
HOPPER_TILES_KINDS(128, 80)

#define HOPPER_SLAB_KINDS(BN)                                              \
  HOPPER_SLAB_ENTRY(hopper_slab_none_n##BN, ATTN_MASK_NONE, BN)           \
  HOPPER_SLAB_ENTRY(hopper_slab_causal_n##BN, ATTN_MASK_CAUSAL, BN)       \
  HOPPER_SLAB_ENTRY(hopper_slab_window_n##BN, ATTN_MASK_WINDOW, BN)       \
  HOPPER_SLAB_ENTRY(hopper_slab_sparse_n##BN, ATTN_MASK_BLOCK_SPARSE, BN)
HOPPER_SLAB_KINDS(176)
HOPPER_SLAB_KINDS(128)
HOPPER_SLAB_KINDS(80)

// Test-only: the mask policies of attn_policy.cuh, run for every query tile with a key-tile window
// [kt_min, kt_max) (what split-KV decode passes), writing what a kernel would visit so that Rust
// can compare it with Mask::classify_tile. One warp per query tile (the policies use warp-uniform
// loads).
//   out[qt * (1 + 2 * max_tiles)]        number of tiles
//   out[... + 1 + 2n], out[... + 2 + 2n] n-th key tile, and 1 if the policy calls it full
#include "attn_params.h"
#include "attn_policy.cuh"

namespace {
template <int KIND, int BM, int BN>
__device__ void policy_tiles(const AttnParams& p, int* out, int kt_min, int kt_max, int max_tiles) {
  typename attn::MaskPolicy<KIND, BM, BN>::type pol;
  const int qt = blockIdx.x;
  pol.init(p, qt, kt_min, kt_max);
  const int n = pol.num_tiles();
  int* o = out + qt * (1 + 2 * max_tiles);
  for (int i = 0; i < n && i < max_tiles; ++i) {
    const int kt = pol.tile(p, i);
    const bool full = pol.full(p, kt);
    if (threadIdx.x == 0) {
      o[1 + 2 * i] = kt;
      o[2 + 2 * i] = full ? 1 : 0;
    }
  }
  if (threadIdx.x == 0) o[0] = n;
}
}  // namespace

#define POLICY_ENTRY(NAME, KIND, BM, BN)                                                                  \
  extern "C" __global__ void NAME(const AttnParams p, int* out, int kt_min, int kt_max, int max_tiles) { \
    policy_tiles<KIND, BM, BN>(p, out, kt_min, kt_max, max_tiles);                                        \
  }

POLICY_ENTRY(policy_none_m128, ATTN_MASK_NONE, 128, 64)
POLICY_ENTRY(policy_causal_m128, ATTN_MASK_CAUSAL, 128, 64)
POLICY_ENTRY(policy_window_m128, ATTN_MASK_WINDOW, 128, 64)
POLICY_ENTRY(policy_window_m16, ATTN_MASK_WINDOW, 16, 64)
POLICY_ENTRY(policy_sparse_m64, ATTN_MASK_BLOCK_SPARSE, 64, 64)

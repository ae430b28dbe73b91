// Helpers of the split-KV decode kernels (kernels/decode.cu) built on the shared tile helpers
// (attn_tile.cuh) and mask policies (attn_policy.cuh); nothing here duplicates them.
#pragma once
#include "attn_params.h"
#include "attn_policy.cuh"
#include "attn_tile.cuh"

namespace attn {

// The query tokens of one decode call (seq_q <= DECODE_MAX_SEQ_Q) form a single policy query
// tile of this many rows, so one policy instance lists the key tiles every token needs.
constexpr int DECODE_MAX_SEQ_Q = 16;

// Keys that at least one query token sees, as one interval [lo, hi): the K/V rows a decode CTA
// must read. Row-band masks: the rows' intervals move right monotonically and touch (see
// RowBandPolicy), so the union runs from the first row's lo to the last row's hi. Block-sparse:
// every visited tile is whole blocks, so only the seq_k end bounds it. Rows outside the union
// are zero-filled without a global read (they are masked element-wise anyway).
template <int KIND>
__device__ __forceinline__ KeyRange decode_key_union(const AttnParams& p) {
  if (KIND == ATTN_MASK_BLOCK_SPARSE) return KeyRange{0, p.seq_k};
  using RB = RowBandPolicy<KIND == ATTN_MASK_BLOCK_SPARSE ? ATTN_MASK_NONE : KIND, DECODE_MAX_SEQ_Q, 64>;
  return KeyRange{RB::key_range(p, 0).lo, RB::key_range(p, p.seq_q - 1).hi};
}

// Explicit vector shared-memory accesses (the compiler may split a float2 store it cannot prove
// 8-byte aligned into two 4-byte stores, which doubles the wavefronts of a fragment store).
__device__ __forceinline__ void st_shared_f32x2(uint32_t addr, float x, float y) {
  asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(addr), "f"(x), "f"(y) : "memory");
}

__device__ __forceinline__ void st_shared_f32x4(uint32_t addr, float x, float y, float z, float w) {
  asm volatile("st.shared.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "f"(x), "f"(y), "f"(z), "f"(w) : "memory");
}

__device__ __forceinline__ float4 ld_shared_f32x4(uint32_t addr) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}

// Full-warp reductions (the combine kernel gives one warp per output row).
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace attn

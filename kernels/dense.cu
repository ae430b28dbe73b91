// Dense attention, the O(n^2)-memory baseline: the textbook three passes over a materialized
// f32 score matrix scratch[b, h, i, j]. It is deliberately simple (no tensor cores): the flash
// kernels are measured against it.
//   1. attn_dense_scores : S = scale * Q K^T, masked entries -inf
//   2. attn_dense_softmax: per row, LSE = log sum exp S; P = exp(S - LSE) in place
//   3. attn_dense_pv     : O = P V (bf16 out)
#include <cuda_bf16.h>
#include <math.h>
#include "attn_params.h"
#include "attn_mask.cuh"

namespace {
constexpr int kTile = 64;      // query rows / key columns per block tile
constexpr int kChunk = 32;     // head_dim (scores) or keys (pv) staged per step
constexpr int kThreads = 256;  // 16 x 16 threads, each owning a 4 x 4 patch of the tile
static_assert(kTile * kTile == kThreads * 16, "each thread owns 4x4 outputs of the 64x64 tile");

__device__ __forceinline__ float bf(const __nv_bfloat16 x) { return __bfloat162float(x); }

__device__ __forceinline__ float* scores_row(const AttnParams& p, int bh, int i) {
  return reinterpret_cast<float*>(p.scratch) + ((long long)bh * p.seq_q + i) * p.seq_k;
}
}  // namespace

// grid (ceil(seq_k/64), ceil(seq_q/64), batch*heads), block 256
extern "C" __global__ void __launch_bounds__(kThreads) attn_dense_scores(const AttnParams p) {
  __shared__ float qs[kTile][kChunk + 1];  // +1: column reads by ty/tx stay conflict-free
  __shared__ float ks[kTile][kChunk + 1];
  const int bh = blockIdx.z, b = bh / p.heads, h = bh % p.heads, hk = h / (p.heads / p.kv_heads);
  const int i0 = blockIdx.y * kTile, j0 = blockIdx.x * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const __nv_bfloat16* q = reinterpret_cast<const __nv_bfloat16*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
  const __nv_bfloat16* k = reinterpret_cast<const __nv_bfloat16*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  float acc[4][4] = {};
  for (int d0 = 0; d0 < p.head_dim; d0 += kChunk) {
    for (int e = threadIdx.x; e < kTile * kChunk; e += kThreads) {
      const int r = e / kChunk, c = e % kChunk;
      qs[r][c] = (i0 + r < p.seq_q) ? bf(q[(i0 + r) * p.q_row_stride + d0 + c]) : 0.f;
      ks[r][c] = (j0 + r < p.seq_k) ? bf(k[(j0 + r) * p.k_row_stride + d0 + c]) : 0.f;
    }
    __syncthreads();
    for (int c = 0; c < kChunk; ++c)
      for (int a = 0; a < 4; ++a)
        for (int bb = 0; bb < 4; ++bb) acc[a][bb] += qs[ty + 16 * a][c] * ks[tx + 16 * bb][c];
    __syncthreads();
  }
  for (int a = 0; a < 4; ++a) {
    const int i = i0 + ty + 16 * a;
    if (i >= p.seq_q) continue;
    float* row = scores_row(p, bh, i);
    for (int bb = 0; bb < 4; ++bb) {
      const int j = j0 + tx + 16 * bb;
      if (j < p.seq_k) row[j] = attn_visible(p, i, j) ? acc[a][bb] * p.scale : -INFINITY;
    }
  }
}

__device__ __forceinline__ float block_reduce(float v, bool is_max, float* red) {
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, w) : v + w;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[lane % (kThreads / 32)];
  for (int o = (kThreads / 64); o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, w) : v + w;
  }
  __syncthreads();  // red is reused by the next reduction
  return v;
}

// grid (seq_q, batch*heads), block 256: one row per block
extern "C" __global__ void __launch_bounds__(kThreads) attn_dense_softmax(const AttnParams p) {
  __shared__ float red[kThreads / 32];
  const int i = blockIdx.x, bh = blockIdx.y;
  float* row = scores_row(p, bh, i);
  float m = -INFINITY;
  for (int j = threadIdx.x; j < p.seq_k; j += kThreads) m = fmaxf(m, row[j]);
  m = block_reduce(m, true, red);
  float sum = 0.f;
  if (m != -INFINITY)
    for (int j = threadIdx.x; j < p.seq_k; j += kThreads) sum += expf(row[j] - m);
  sum = block_reduce(sum, false, red);
  const float lse = (m == -INFINITY) ? -INFINITY : m + logf(sum);
  for (int j = threadIdx.x; j < p.seq_k; j += kThreads) row[j] = (m == -INFINITY) ? 0.f : expf(row[j] - lse);
  if (threadIdx.x == 0) reinterpret_cast<float*>(p.lse)[(long long)bh * p.seq_q + i] = lse;
}

// grid (ceil(seq_q/64), head_dim/64, batch*heads), block 256: a 64 x 64 patch of O
extern "C" __global__ void __launch_bounds__(kThreads) attn_dense_pv(const AttnParams p) {
  __shared__ float ps[kTile][kChunk + 1];
  __shared__ float vs[kChunk][kTile];
  const int bh = blockIdx.z, b = bh / p.heads, h = bh % p.heads, hk = h / (p.heads / p.kv_heads);
  const int i0 = blockIdx.x * kTile, c0 = blockIdx.y * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
  float acc[4][4] = {};
  for (int j0 = 0; j0 < p.seq_k; j0 += kChunk) {
    for (int e = threadIdx.x; e < kTile * kChunk; e += kThreads) {
      const int r = e / kChunk, c = e % kChunk;
      ps[r][c] = (i0 + r < p.seq_q && j0 + c < p.seq_k) ? scores_row(p, bh, i0 + r)[j0 + c] : 0.f;
      const int vr = e / kTile, vc = e % kTile;
      vs[vr][vc] = (j0 + vr < p.seq_k) ? bf(v[(j0 + vr) * p.v_row_stride + c0 + vc]) : 0.f;
    }
    __syncthreads();
    for (int c = 0; c < kChunk; ++c)
      for (int a = 0; a < 4; ++a)
        for (int bb = 0; bb < 4; ++bb) acc[a][bb] += ps[ty + 16 * a][c] * vs[c][tx + 16 * bb];
    __syncthreads();
  }
  __nv_bfloat16* o = reinterpret_cast<__nv_bfloat16*>(p.o) + b * p.o_batch_stride + h * p.o_head_stride;
  for (int a = 0; a < 4; ++a) {
    const int i = i0 + ty + 16 * a;
    if (i >= p.seq_q) continue;
    for (int bb = 0; bb < 4; ++bb) o[i * p.o_row_stride + c0 + tx + 16 * bb] = __float2bfloat16(acc[a][bb]);
  }
}

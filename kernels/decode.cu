// Split-KV decode attention (Flash-Decoding style) on tensor cores for sm_90a, plus the combine.
//
// Decode is memory-bound: a few query tokens (seq_q <= 16) against a long K/V cache. The design
// goal is to read every visible K/V byte once, with 16-byte cp.async, on every SM:
//
// * GQA packing: one CTA serves ALL query heads of one KV head. Its query tile's rows are the
//   (token, head-in-group) pairs, row = token * group + g, so K/V of that KV head are streamed
//   once for all of them (not once per query head). Rows beyond seq_q * group are zero padding.
// * Split-KV: the key tiles a mask policy lists (attn_policy.cuh, one policy query tile holding
//   every token) are cut into num_splits runs of split_len / BN tiles; grid.x enumerates
//   (row chunk, split), so batch * kv_heads * splits CTAs fill the SMs even at batch 1. Each
//   split writes its normalized partial O and LSE in f32; attn_decode_combine merges them with
//   log-sum-exp weights. With one split the kernel writes bf16 O and LSE directly.
// * Only the union of the tokens' visible keys is read (decode_key_union): K/V rows of a tile
//   outside it are zero-filled by cp.async with src-size 0, which reads nothing.
// * Two warp layouts: "r16" (rows <= 16: 1 x 4 warps, each warp takes 16 of the tile's 64
//   keys for the one m16 row block, merged across warps in shared memory at the end) and
//   "r128" (up to 128 rows: 8 x 1 warps, each warp one m16 row block over all 64 keys; warps
//   whose rows are all padding skip the math). More than 128 rows use several row chunks.
//
// Splits that see no visible key (and rows that see none) have LSE -inf and O = 0; the combine
// gives such splits weight 0 and a row with no visible key at all gets O = 0, LSE = -inf.
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include "attn_decode.cuh"
#include "attn_params.h"
#include "attn_policy.cuh"
#include "attn_tile.cuh"

namespace {

using attn::SwizzledTile;
using bf16 = __nv_bfloat16;

template <int HEAD_DIM, int WARPS_M, int WARPS_N, int STAGES_, int MIN_BLOCKS_>
struct DecodeTraits {
  static constexpr int D = HEAD_DIM;
  static constexpr int BN = 64;                 // keys per K/V tile (the policies' BN)
  static constexpr int WM = WARPS_M;            // warps along rows (16 rows each)
  static constexpr int WN = WARPS_N;            // warps along the keys of a tile
  static constexpr int RM = 16 * WM;            // rows (token, head) per CTA
  static constexpr int KW = BN / WN;            // keys of a tile one warp handles
  static constexpr int kWarps = WM * WN;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int STAGES = STAGES_;
  static constexpr int MIN_BLOCKS = MIN_BLOCKS_;
  using QTile = SwizzledTile<RM, D>;
  using KVTile = SwizzledTile<BN, D>;
  static constexpr int kStageBytes = 2 * KVTile::kBytes;
  static constexpr int kSmemBytes = QTile::kBytes + STAGES * kStageBytes;
  // Epilogue staging of f32 O per (warp column, row): rows padded by 8 floats so that the
  // fragment stores (8 rows x 8 floats per instruction) hit every bank exactly twice.
  static constexpr int kORowFloats = D + 8;
  static constexpr int kOStageBytes = WN * RM * kORowFloats * 4;

  static_assert(KW % 16 == 0, "a warp's key slice feeds the PV mma as whole k16 slices");
  static_assert(D % 64 == 0 && D <= 128, "swizzle needs 128-byte multiples; O fragments stay in registers");
  static_assert((BN * D / 8) % kThreads == 0, "every thread issues the same number of K/V cp.async per tile");
  static_assert(kOStageBytes <= STAGES * kStageBytes, "the O staging reuses the K/V ring");
  static_assert(kSmemBytes <= 227 * 1024 && kSmemBytes * MIN_BLOCKS <= 227 * 1024, "H100 shared memory");
};

// D128: 3 stages of 32 KB (64 KB in flight per CTA, two CTAs per SM); D64: 4 stages of 16 KB.
using R16D64 = DecodeTraits<64, 1, 4, 4, 3>;
using R16D128 = DecodeTraits<128, 1, 4, 3, 2>;
using R128D64 = DecodeTraits<64, 8, 1, 4, 1>;
using R128D128 = DecodeTraits<128, 8, 1, 3, 1>;

// K or V rows [k0, k0 + BN) into a swizzled tile; rows outside [valid.lo, valid.hi) are zero-filled
// from the always-valid row-0 address without reading it.
template <class T>
__device__ __forceinline__ void load_kv_tile(uint32_t dst, const bf16* g, int k0, KeyRange valid, int64_t row_stride) {
  constexpr int kChunks = T::D / 8;
  constexpr int kPerThread = T::BN * kChunks / T::kThreads;
#pragma unroll
  for (int it = 0; it < kPerThread; ++it) {
    const int c = threadIdx.x + it * T::kThreads;
    const int r = c / kChunks, ch = c % kChunks;
    const int key = k0 + r;
    const bool ok = key >= valid.lo && key < valid.hi;
    const bf16* src = g + (ok ? (int64_t)key * row_stride + ch * 8 : 0);
    attn::cp_async_cg_16(dst + T::KVTile::offset(r, ch), src, ok);
  }
}

// One K/V tile for one warp: S = Q K^T on its KW keys, mask (MASKED), online softmax, O += P V.
template <class T, bool MASKED>
__device__ __forceinline__ void attend(uint32_t sK, uint32_t sV, int key_off, const uint32_t (&qf)[T::D / 16][4],
                                       float (&o)[T::D / 8][4], attn::OnlineSoftmaxRow (&row)[2],
                                       const KeyRange (&rk)[2], int k0, float scale_log2) {
  using KV = typename T::KVTile;
  const int lane = threadIdx.x & 31;
  float s[T::KW / 8][4];
#pragma unroll
  for (int nb = 0; nb < T::KW / 8; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;

  // K[key][d] rows are B's columns: plain ldmatrix gives B fragments.
  // x4 matrices: (keys +0..7, d chunk 2kk), (+0..7, 2kk+1), (+8..15, 2kk), (+8..15, 2kk+1).
#pragma unroll
  for (int kk = 0; kk < T::D / 16; ++kk) {
#pragma unroll
    for (int np = 0; np < T::KW / 16; ++np) {
      uint32_t kf[4];
      attn::ldmatrix_x4(kf, sK + KV::offset(key_off + np * 16 + (lane & 7) + ((lane >> 4) << 3),
                                            2 * kk + ((lane >> 3) & 1)));
      attn::mma_m16n8k16_bf16(s[2 * np], qf[kk], kf[0], kf[1]);
      attn::mma_m16n8k16_bf16(s[2 * np + 1], qf[kk], kf[2], kf[3]);
    }
  }

  if (MASKED) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int nb = 0; nb < T::KW / 8; ++nb) {
        const int j = k0 + key_off + nb * 8 + 2 * (lane & 3);
        if (j < rk[h].lo || j >= rk[h].hi) s[nb][2 * h] = -INFINITY;
        if (j + 1 < rk[h].lo || j + 1 >= rk[h].hi) s[nb][2 * h + 1] = -INFINITY;
      }
    }
  }

  float alpha[2];
  attn::online_softmax_update<T::KW / 8>(s, row, scale_log2, alpha);
#pragma unroll
  for (int db = 0; db < T::D / 8; ++db) {
    o[db][0] *= alpha[0];
    o[db][1] *= alpha[0];
    o[db][2] *= alpha[1];
    o[db][3] *= alpha[1];
  }

  // P from the S accumulators is the A fragment; V[key][d] via ldmatrix.trans gives B fragments.
  // x4 matrices: (keys +0..7, d chunk 2dp), (keys +8..15, 2dp), (+0..7, 2dp+1), (+8..15, 2dp+1).
#pragma unroll
  for (int kk = 0; kk < T::KW / 16; ++kk) {
    const uint32_t a[4] = {attn::pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), attn::pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                           attn::pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                           attn::pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < T::D / 16; ++dp) {
      uint32_t vf[4];
      attn::ldmatrix_x4_trans(vf, sV + KV::offset(key_off + kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                                  2 * dp + (lane >> 4)));
      attn::mma_m16n8k16_bf16(o[2 * dp], a, vf[0], vf[1]);
      attn::mma_m16n8k16_bf16(o[2 * dp + 1], a, vf[2], vf[3]);
    }
  }
}

// grid (row_chunks * num_splits, kv_heads, batch), block kThreads, dynamic smem kSmemBytes.
template <class T, int KIND>
__device__ __forceinline__ void decode_split(const AttnParams& p) {
  using Policy = typename attn::MaskPolicy<KIND, attn::DECODE_MAX_SEQ_Q, T::BN>::type;
  using QT = typename T::QTile;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float s_m[T::WN * T::RM], s_l[T::WN * T::RM];
  const uint32_t sQ = attn::smem_u32(smem);
  const uint32_t sKV = sQ + QT::kBytes;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp / T::WN, wn = warp % T::WN;
  const int split = blockIdx.x % p.num_splits, chunk = blockIdx.x / p.num_splits;
  const int hk = blockIdx.y, b = blockIdx.z;
  const int group = p.heads / p.kv_heads;
  const int rows = p.seq_q * group;       // (token, head-in-group) pairs of this KV head
  const int row0 = chunk * T::RM;         // this CTA's first row
  const bf16* k = reinterpret_cast<const bf16*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const bf16* v = reinterpret_cast<const bf16*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;

  // The key tiles every token needs, then this split's run of them.
  Policy pol;
  pol.init(p, 0, 0, attn::ceil_div(p.seq_k, T::BN));
  const int per_split = p.split_len / T::BN;
  const int n_begin = split * per_split;
  const int n_tiles = max(min(n_begin + per_split, pol.num_tiles()) - n_begin, 0);
  const KeyRange kv_valid = attn::decode_key_union<KIND>(p);

  // The two rows this thread holds in C fragments, their tokens and key ranges (padding rows
  // take the last token: their results are never stored).
  KeyRange rk[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row0 + wm * 16 + (lane >> 2) + 8 * h;
    rk[h] = pol.row_keys(p, min(r / group, p.seq_q - 1));
  }
  const bool warp_active = row0 + wm * 16 < rows;  // warp-uniform: some row of this warp is real

  float o[T::D / 8][4];
#pragma unroll
  for (int db = 0; db < T::D / 8; ++db) o[db][0] = o[db][1] = o[db][2] = o[db][3] = 0.f;
  attn::OnlineSoftmaxRow row[2] = {{-INFINITY, 0.f}, {-INFINITY, 0.f}};

  if (n_tiles > 0) {
    // Q rows (token, head) of this CTA; rows past `rows` are zero-filled.
    {
      constexpr int kChunks = T::D / 8;
      for (int c = tid; c < T::RM * kChunks; c += T::kThreads) {
        const int r = c / kChunks, ch = c % kChunks;
        const int gr = row0 + r;
        const bool ok = gr < rows;
        const int tok = ok ? gr / group : 0, h = hk * group + (ok ? gr % group : 0);
        const bf16* src = reinterpret_cast<const bf16*>(p.q) + b * p.q_batch_stride +
                          (ok ? (int64_t)tok * p.q_row_stride + (int64_t)h * p.q_head_stride + ch * 8 : 0);
        attn::cp_async_cg_16(sQ + QT::offset(r, ch), src, ok);
      }
      attn::cp_async_commit();
    }
#pragma unroll
    for (int st = 0; st < T::STAGES - 1; ++st) {
      if (st < n_tiles) {
        const int k0 = pol.tile(p, n_begin + st) * T::BN;
        const uint32_t dst = sKV + st * T::kStageBytes;
        load_kv_tile<T>(dst, k, k0, kv_valid, p.k_row_stride);
        load_kv_tile<T>(dst + T::KVTile::kBytes, v, k0, kv_valid, p.v_row_stride);
      }
      attn::cp_async_commit();
    }
    attn::cp_async_wait<T::STAGES - 1>();  // Q landed
    __syncthreads();
    uint32_t qf[T::D / 16][4];
#pragma unroll
    for (int kk = 0; kk < T::D / 16; ++kk)
      attn::ldmatrix_x4(qf[kk], sQ + QT::offset(wm * 16 + (lane & 15), 2 * kk + (lane >> 4)));

    for (int n = 0; n < n_tiles; ++n) {
      attn::cp_async_wait<T::STAGES - 2>();  // tile n landed (this thread's copies) ...
      __syncthreads();  // ... everyone's, and every warp is done with tile n-1's buffer
      const int pf = n + T::STAGES - 1;
      if (pf < n_tiles) {
        const int k0 = pol.tile(p, n_begin + pf) * T::BN;
        const uint32_t dst = sKV + (pf % T::STAGES) * T::kStageBytes;
        load_kv_tile<T>(dst, k, k0, kv_valid, p.k_row_stride);
        load_kv_tile<T>(dst + T::KVTile::kBytes, v, k0, kv_valid, p.v_row_stride);
      }
      attn::cp_async_commit();
      if (warp_active) {
        const int kt = pol.tile(p, n_begin + n);
        const uint32_t sK = sKV + (n % T::STAGES) * T::kStageBytes;
        if (pol.full(p, kt))
          attend<T, false>(sK, sK + T::KVTile::kBytes, wn * T::KW, qf, o, row, rk, kt * T::BN, p.scale_log2);
        else
          attend<T, true>(sK, sK + T::KVTile::kBytes, wn * T::KW, qf, o, row, rk, kt * T::BN, p.scale_log2);
      }
    }
    attn::cp_async_wait<0>();
    __syncthreads();  // every warp is done with the K/V ring: it becomes the O staging area
  }

  // Stage each warp's unnormalized O (f32), row max (log2 units) and row sum in shared memory.
  const uint32_t sO = sKV;  // f32 [WN][RM][kORowFloats]
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = wm * 16 + (lane >> 2) + 8 * h;
    const float l = attn::quad_sum(row[h].l);
    if ((lane & 3) == 0) {
      s_m[wn * T::RM + r] = row[h].m;
      s_l[wn * T::RM + r] = l;
    }
    const uint32_t dst = sO + 4 * ((wn * T::RM + r) * T::kORowFloats + 2 * (lane & 3));
#pragma unroll
    for (int db = 0; db < T::D / 8; ++db) attn::st_shared_f32x2(dst + 32 * db, o[db][2 * h], o[db][2 * h + 1]);
  }
  __syncthreads();

  // Merge the WN key slices of every row and write 4 columns per thread: O / l and the LSE.
  // A split (or row) that saw no visible key has l = 0: O = 0 and LSE = -inf.
  const bool direct = p.num_splits == 1;
  constexpr int kUnits = T::D / 4;
  for (int u = tid; u < T::RM * kUnits; u += T::kThreads) {
    const int r = u / kUnits, c4 = u % kUnits;
    const int gr = row0 + r;
    if (gr >= rows) continue;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < T::WN; ++w) m = fmaxf(m, s_m[w * T::RM + r]);
    float l = 0.f;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int w = 0; w < T::WN; ++w) {
      const float f = (m == -INFINITY) ? 0.f : attn::ex2_approx(s_m[w * T::RM + r] - m);
      l += f * s_l[w * T::RM + r];
      const float4 x = attn::ld_shared_f32x4(sO + 4 * ((w * T::RM + r) * T::kORowFloats + 4 * c4));
      acc.x += f * x.x;
      acc.y += f * x.y;
      acc.z += f * x.z;
      acc.w += f * x.w;
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const float lse = l > 0.f ? (m + log2f(l)) * 0.69314718055994531f : -INFINITY;
    const int tok = gr / group, h = hk * group + gr % group;
    if (direct) {
      bf16* out = reinterpret_cast<bf16*>(p.o) + b * p.o_batch_stride + (int64_t)tok * p.o_row_stride +
                  (int64_t)h * p.o_head_stride + 4 * c4;
      *reinterpret_cast<uint2*>(out) = make_uint2(attn::pack_bf16x2(acc.x * inv, acc.y * inv),
                                                  attn::pack_bf16x2(acc.z * inv, acc.w * inv));
      if (c4 == 0) reinterpret_cast<float*>(p.lse)[((int64_t)b * p.heads + h) * p.seq_q + tok] = lse;
    } else {
      const int64_t prow = (((int64_t)split * p.batch + b) * p.heads + h) * p.seq_q + tok;
      *reinterpret_cast<float4*>(reinterpret_cast<float*>(p.scratch) + prow * T::D + 4 * c4) =
          make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv);
      if (c4 == 0) reinterpret_cast<float*>(p.scratch_lse)[prow] = lse;
    }
  }
}

// Combine: one CTA of kCombineWarps warps per output row (b, h, token). Warp w takes the blocks
// of 32 splits k = w, w + kCombineWarps, ...: per block each lane loads one split's LSE (every
// LSE is read once), the warp keeps a running max, the weights exp(lse_s - max) are broadcast
// lane by lane and each lane adds its D / 32 columns of w_s * O_s; splits of weight 0 (no
// visible key) are not read at all. The warps' (max, sum, O) are then merged in shared memory.
// Several warps per row, and loads issued 8 at a time, keep enough partial-O reads in flight
// when a 1M-token decode has hundreds of splits and only a handful of output rows.
constexpr int kCombineWarps = 8;

template <int D>
__device__ __forceinline__ void decode_combine(const AttnParams& p) {
  constexpr int kCols = D / 32;
  static_assert(kCols == 2 || kCols == 4, "head_dim 64 or 128");
  __shared__ float s_m[kCombineWarps], s_sum[kCombineWarps];
  __shared__ __align__(16) float s_acc[kCombineWarps][D];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t rows = (int64_t)p.batch * p.heads * p.seq_q;
  const int64_t row = blockIdx.x;  // [b, h, token], the partials' and the LSE's row order
  const float* part_o = reinterpret_cast<const float*>(p.scratch);
  const float* part_lse = reinterpret_cast<const float*>(p.scratch_lse);

  float m = -INFINITY, sum = 0.f;
  float acc[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) acc[c] = 0.f;
  for (int s0 = 32 * warp; s0 < p.num_splits; s0 += 32 * kCombineWarps) {
    const int s = s0 + lane;
    const float lse_s = s < p.num_splits ? part_lse[s * rows + row] : -INFINITY;
    const float m_new = fmaxf(m, attn::warp_max(lse_s));
    if (m_new == -INFINITY) continue;  // no split so far saw a key (warp-uniform)
    const float rescale = expf(m - m_new);  // m = -inf: 0, and acc, sum are 0 then anyway
    sum *= rescale;
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc[c] *= rescale;
    m = m_new;
    const float w_lane = expf(lse_s - m);  // -inf (empty or absent split): 0
    sum += attn::warp_sum(w_lane);
#pragma unroll 8
    for (int j = 0; j < 32; ++j) {
      const float w = __shfl_sync(0xffffffffu, w_lane, j);
      if (w > 0.f) {  // warp-uniform: nothing to add, nothing to read
        const float* src = part_o + ((s0 + j) * rows + row) * D + lane * kCols;
        if constexpr (kCols == 4) {
          const float4 x = *reinterpret_cast<const float4*>(src);
          acc[0] += w * x.x;
          acc[1] += w * x.y;
          acc[2] += w * x.z;
          acc[3] += w * x.w;
        } else {
          const float2 x = *reinterpret_cast<const float2*>(src);
          acc[0] += w * x.x;
          acc[1] += w * x.y;
        }
      }
    }
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_sum[warp] = sum;
  }
  // One vector store per lane: a warp's row is contiguous (conflict-free).
  const uint32_t acc_dst = attn::smem_u32(&s_acc[warp][lane * kCols]);
  if constexpr (kCols == 4)
    attn::st_shared_f32x4(acc_dst, acc[0], acc[1], acc[2], acc[3]);
  else
    attn::st_shared_f32x2(acc_dst, acc[0], acc[1]);
  __syncthreads();

  float mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < kCombineWarps; ++w) mx = fmaxf(mx, s_m[w]);
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kCombineWarps; ++w) total += (mx == -INFINITY) ? 0.f : expf(s_m[w] - mx) * s_sum[w];
  const int tok = (int)(row % p.seq_q), h = (int)((row / p.seq_q) % p.heads);
  const int b = (int)(row / ((int64_t)p.seq_q * p.heads));
  if (threadIdx.x < D) {
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < kCombineWarps; ++w)
      if (mx != -INFINITY) o += expf(s_m[w] - mx) * s_acc[w][threadIdx.x];
    bf16* out = reinterpret_cast<bf16*>(p.o) + b * p.o_batch_stride + (int64_t)tok * p.o_row_stride +
                (int64_t)h * p.o_head_stride;
    out[threadIdx.x] = __float2bfloat16_rn(total > 0.f ? o / total : 0.f);
  }
  if (threadIdx.x == 0) reinterpret_cast<float*>(p.lse)[row] = total > 0.f ? mx + logf(total) : -INFINITY;
}

}  // namespace

#define ATTN_DECODE_ENTRY(NAME, TRAITS, KIND)                                                                  \
  extern "C" __global__ void __launch_bounds__(TRAITS::kThreads, TRAITS::MIN_BLOCKS) NAME(const AttnParams p) { \
    decode_split<TRAITS, KIND>(p);                                                                             \
  }

ATTN_DECODE_ENTRY(attn_decode_d64_r16_none, R16D64, ATTN_MASK_NONE)
ATTN_DECODE_ENTRY(attn_decode_d64_r16_causal, R16D64, ATTN_MASK_CAUSAL)
ATTN_DECODE_ENTRY(attn_decode_d64_r16_window, R16D64, ATTN_MASK_WINDOW)
ATTN_DECODE_ENTRY(attn_decode_d64_r16_sparse, R16D64, ATTN_MASK_BLOCK_SPARSE)
ATTN_DECODE_ENTRY(attn_decode_d128_r16_none, R16D128, ATTN_MASK_NONE)
ATTN_DECODE_ENTRY(attn_decode_d128_r16_causal, R16D128, ATTN_MASK_CAUSAL)
ATTN_DECODE_ENTRY(attn_decode_d128_r16_window, R16D128, ATTN_MASK_WINDOW)
ATTN_DECODE_ENTRY(attn_decode_d128_r16_sparse, R16D128, ATTN_MASK_BLOCK_SPARSE)
ATTN_DECODE_ENTRY(attn_decode_d64_r128_none, R128D64, ATTN_MASK_NONE)
ATTN_DECODE_ENTRY(attn_decode_d64_r128_causal, R128D64, ATTN_MASK_CAUSAL)
ATTN_DECODE_ENTRY(attn_decode_d64_r128_window, R128D64, ATTN_MASK_WINDOW)
ATTN_DECODE_ENTRY(attn_decode_d64_r128_sparse, R128D64, ATTN_MASK_BLOCK_SPARSE)
ATTN_DECODE_ENTRY(attn_decode_d128_r128_none, R128D128, ATTN_MASK_NONE)
ATTN_DECODE_ENTRY(attn_decode_d128_r128_causal, R128D128, ATTN_MASK_CAUSAL)
ATTN_DECODE_ENTRY(attn_decode_d128_r128_window, R128D128, ATTN_MASK_WINDOW)
ATTN_DECODE_ENTRY(attn_decode_d128_r128_sparse, R128D128, ATTN_MASK_BLOCK_SPARSE)

// grid batch * heads * seq_q (one CTA per output row), block 32 * kCombineWarps.
extern "C" __global__ void __launch_bounds__(32 * kCombineWarps) attn_decode_combine_d64(const AttnParams p) {
  decode_combine<64>(p);
}
extern "C" __global__ void __launch_bounds__(32 * kCombineWarps) attn_decode_combine_d128(const AttnParams p) {
  decode_combine<128>(p);
}

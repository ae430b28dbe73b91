// Decode-only pieces of the split-KV decode kernels (kernels/decode.cu, kernels/decode_paged.cuh);
// the tiles, ring, mask objects and warp step are the shared ones (attn_tile.cuh,
// attn_tile_mask.cuh, attn_warp.cuh).
#pragma once
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include "attn_params.h"
#include "attn_ptx.cuh"
#include "attn_tile_mask.cuh"
#include "attn_warp.cuh"

namespace attn {

// The query tokens of one decode call (seq_q <= DECODE_MAX_SEQ_Q) form a single mask query tile
// of this many rows, so one mask object lists the key tiles every token needs.
constexpr int DECODE_MAX_SEQ_Q = 16;

// Keys that at least one query token sees, as one interval [lo, hi): the K/V rows a decode CTA
// must read. Row-band masks: the rows' intervals move right monotonically and touch (see
// RowBandMask), so the union runs from the first row's lo to the last row's hi. Block-sparse:
// every visited tile is whole blocks, so only the seq_k end bounds it. Rows outside the union
// are zero-filled without a global read (they are masked element-wise anyway).
template <int KIND>
__device__ __forceinline__ KeyRange decode_key_union(const AttnParams& p) {
  if (KIND == ATTN_MASK_BLOCK_SPARSE) return KeyRange{0, p.seq_k};
  using RB = RowBandMask<KIND == ATTN_MASK_BLOCK_SPARSE ? ATTN_MASK_NONE : KIND, DECODE_MAX_SEQ_Q, 64>;
  return KeyRange{RB::key_range(p, 0).lo, RB::key_range(p, p.seq_q - 1).hi};
}

// The Q rows of a decode CTA for SwizzledTile::cp_async_rows: row gr is (token gr / group, query
// head head0 + gr % group) of the KV head's group (GQA packing); rows >= rows are padding.
struct GqaQueryRows {
  int rows, group, head0;
  int64_t row_stride, head_stride;
  __device__ __forceinline__ bool valid(int gr) const { return gr < rows; }
  __device__ __forceinline__ int64_t offset(int gr) const {
    return (int64_t)(gr / group) * row_stride + (int64_t)(head0 + gr % group) * head_stride;
  }
};

// The end of a split-KV decode CTA whose kWarpsN warps each attended a slice of every key tile:
// the slices' (max, sum, O) of every row meet in shared memory, then each output unit (row, 4
// columns) merges them. T gives BM (rows), kWarpsN and kORowFloats (the f32 staging row pitch);
// sO is the f32 staging area [kWarpsN][BM][kORowFloats], s_m and s_l are [kWarpsN][BM].

// Stage this warp's (row block wm, key slice wn) unnormalized O (f32), row max (log2 units) and
// row sum. The caller syncs the CTA (or its consumer warps) before merge_warp_slices.
template <class T>
__device__ __forceinline__ void stage_warp_slices(const OAccumulator<1, T::D>& acc, uint32_t sO, float* s_m,
                                                  float* s_l, int wm, int wn, int lane) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = wm * 16 + (lane >> 2) + 8 * h;
    const float l = quad_sum(acc.row[0][h].l);
    if ((lane & 3) == 0) {
      s_m[wn * T::BM + r] = acc.row[0][h].m;
      s_l[wn * T::BM + r] = l;
    }
    const uint32_t dst = sO + 4 * ((wn * T::BM + r) * T::kORowFloats + 2 * (lane & 3));
#pragma unroll
    for (int db = 0; db < T::D / 8; ++db) st_shared_f32x2(dst + 32 * db, acc.o[0][db][2 * h], acc.o[0][db][2 * h + 1]);
  }
}

// One merged output unit: 4 columns of unnormalized O, 1 / l and the row's LSE in nats. o() is
// the normalized columns; it is taken where each output is written (the split kernels' stores
// normalize in each branch, so the instruction stream is the one of the unshared epilogues).
struct MergedUnit {
  float4 acc;
  float inv, lse;
  __device__ __forceinline__ float4 o() const {
    return make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv);
  }
};

// Merge the kWarpsN key slices of row r (< BM), columns 4 * c4 .. 4 * c4 + 3. A row that saw no
// visible key has l = 0: O = 0 and LSE = -inf. The caller writes the unit: where it goes differs.
template <class T>
__device__ __forceinline__ MergedUnit merge_warp_slices(uint32_t sO, const float* s_m, const float* s_l, int r, int c4) {
  float m = -INFINITY;
#pragma unroll
  for (int w = 0; w < T::kWarpsN; ++w) m = fmaxf(m, s_m[w * T::BM + r]);
  float l = 0.f;
  float4 acc4 = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int w = 0; w < T::kWarpsN; ++w) {
    const float f = (m == -INFINITY) ? 0.f : ex2_approx(s_m[w * T::BM + r] - m);
    l += f * s_l[w * T::BM + r];
    const float4 x = ld_shared_f32x4(sO + 4 * ((w * T::BM + r) * T::kORowFloats + 4 * c4));
    acc4.x += f * x.x;
    acc4.y += f * x.y;
    acc4.z += f * x.z;
    acc4.w += f * x.w;
  }
  return MergedUnit{acc4, l > 0.f ? 1.f / l : 0.f, natural_lse(m, l)};
}

// Warps of a combine CTA (one output row at a time). Several warps per row, and partial-O loads
// issued 8 at a time, keep enough reads in flight when a 1M-token decode has hundreds of splits
// and only a handful of output rows.
constexpr int COMBINE_WARPS = 8;

// One output row's split partials: split k's normalized f32 O row starts at
// o + (row0 + k * stride) * D and its LSE is lse[row0 + k * stride]. The contiguous and the
// paged decode lay their partials out differently; only this addressing differs.
struct SplitPartials {
  const float* o;
  const float* lse;
  int64_t row0, stride;
  int count;
};

// The merged (max, sum) of one output row: LSE = mx + log(total); total = 0 when no split saw a key.
struct SplitMerge {
  float mx, total;
  __device__ __forceinline__ float lse() const { return total > 0.f ? mx + logf(total) : -INFINITY; }
};

// The split-KV combine of one output row, O = sum_k exp(lse_k - lse) O_k, lse = log sum_k exp(lse_k),
// by a CTA of COMBINE_WARPS warps, as shared-memory state plus two steps: merge (all threads),
// then column (each output column's value). The caller writes the row: only where it goes
// differs between the contiguous and the paged decode. No visible key in any split: O = 0,
// LSE = -inf. A caller combining several rows syncs the CTA before the next merge. The shared
// state is three separate arrays, not one struct: a struct's 16-byte alignment would let the
// compiler turn the reads of m and sum into vector loads (a different instruction stream).
template <int D>
struct SplitCombine {
  static constexpr int kCols = D / 32;
  static_assert(kCols == 2 || kCols == 4, "head_dim 64 or 128");
  __device__ __forceinline__ static float* m() {
    __shared__ float s_m[COMBINE_WARPS];
    return s_m;
  }
  __device__ __forceinline__ static float* sum() {
    __shared__ float s_sum[COMBINE_WARPS];
    return s_sum;
  }
  __device__ __forceinline__ static float (*acc())[D] {
    __shared__ __align__(16) float s_acc[COMBINE_WARPS][D];
    return s_acc;
  }

  // Warp w takes the blocks of 32 splits k = w, w + COMBINE_WARPS, ...: per block each lane loads
  // one split's LSE (every LSE is read once), the warp keeps a running max, the weights
  // exp(lse_k - max) are broadcast lane by lane and each lane adds its D / 32 columns of w_k O_k;
  // splits of weight 0 (no visible key) are not read at all. The warps' (max, sum, O) then meet
  // here in shared memory.
  __device__ __forceinline__ static SplitMerge merge(const SplitPartials& src) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float mw = -INFINITY, sw = 0.f;
    float a[kCols];
#pragma unroll
    for (int c = 0; c < kCols; ++c) a[c] = 0.f;
    for (int s0 = 32 * warp; s0 < src.count; s0 += 32 * COMBINE_WARPS) {
      const int k = s0 + lane;
      const float lse_k = k < src.count ? src.lse[src.row0 + k * src.stride] : -INFINITY;
      const float m_new = fmaxf(mw, warp_max(lse_k));
      if (m_new == -INFINITY) continue;  // no split so far saw a key (warp-uniform)
      const float rescale = expf(mw - m_new);  // mw = -inf: 0, and a, sw are 0 then anyway
      sw *= rescale;
#pragma unroll
      for (int c = 0; c < kCols; ++c) a[c] *= rescale;
      mw = m_new;
      const float w_lane = expf(lse_k - mw);  // -inf (empty or absent split): 0
      sw += warp_sum(w_lane);
#pragma unroll 8
      for (int j = 0; j < 32; ++j) {
        const float w = __shfl_sync(0xffffffffu, w_lane, j);
        if (w > 0.f) {  // warp-uniform: nothing to add, nothing to read
          const float* o = src.o + (src.row0 + (s0 + j) * src.stride) * D + lane * kCols;
          if constexpr (kCols == 4) {
            const float4 x = *reinterpret_cast<const float4*>(o);
            a[0] += w * x.x;
            a[1] += w * x.y;
            a[2] += w * x.z;
            a[3] += w * x.w;
          } else {
            const float2 x = *reinterpret_cast<const float2*>(o);
            a[0] += w * x.x;
            a[1] += w * x.y;
          }
        }
      }
    }
    if (lane == 0) {
      m()[warp] = mw;
      sum()[warp] = sw;
    }
    // One vector store per lane: a warp's row is contiguous (conflict-free).
    const uint32_t acc_dst = smem_u32(&acc()[warp][lane * kCols]);
    if constexpr (kCols == 4)
      st_shared_f32x4(acc_dst, a[0], a[1], a[2], a[3]);
    else
      st_shared_f32x2(acc_dst, a[0], a[1]);
    __syncthreads();

    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < COMBINE_WARPS; ++w) mx = fmaxf(mx, m()[w]);
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < COMBINE_WARPS; ++w) total += (mx == -INFINITY) ? 0.f : expf(m()[w] - mx) * sum()[w];
    return SplitMerge{mx, total};
  }

  // Column c (< D) of the combined, normalized O.
  __device__ __forceinline__ static __nv_bfloat16 column(const SplitMerge& r, int c) {
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < COMBINE_WARPS; ++w)
      if (r.mx != -INFINITY) o += expf(m()[w] - r.mx) * acc()[w][c];
    return __float2bfloat16_rn(r.total > 0.f ? o / r.total : 0.f);
  }
};

}  // namespace attn

// The warp step of tensor-core attention with mma.sync m16n8k16 (bf16 in, f32 accumulate), shared
// by the flash prefill and the split-KV decode kernels. A warp owns MB m16 row blocks of queries
// and NK keys of each K/V tile; per visited tile it computes
//   S = Q K^T            qk_scores          (ldmatrix of K, HMMA)
//   S = mask(S)          mask_scores        (partial tiles only: MASKED is a template argument)
//   m, l, P = softmax    online_softmax_update (log2 domain, ex2.approx)
//   O = alpha O          rescale_o
//   O += P V             pv_accumulate      (P repacked from the S accumulators: pack_p; V by
//                                            ldmatrix.trans)
// attend_tile strings them together; a kernel supplies the shared-memory tiles, the Q operand and
// which keys each of its rows sees. docs/KERNELS.md shows how a kernel is assembled from these.
#pragma once
#include <math.h>
#include <stdint.h>
#include "attn_mask.cuh"
#include "attn_params.h"
#include "attn_ptx.cuh"
#include "attn_tile.cuh"
#include "attn_tile_mask.cuh"

namespace attn {

// ---------------------------------------------------------------------------------------------
// The warp tiling every mma.sync attention kernel shares: a CTA holds BM query rows as WARPS_M
// warps of 16 * M_BLOCKS rows, streams K/V tiles of BN keys through a STAGES-deep ring, and its
// WARPS_N warps per row block split each tile's keys (WARPS_N > 1: their softmax states are
// merged at the end). Kernel traits derive from it and add their own choices and checks.
template <int HEAD_DIM, int BLOCK_N, int WARPS_M, int WARPS_N, int M_BLOCKS, int STAGES_, int MIN_BLOCKS_>
struct MmaTiling {
  static constexpr int D = HEAD_DIM;
  static constexpr int BN = BLOCK_N;               // keys per K/V tile
  static constexpr int kWarpsM = WARPS_M;          // warps along the query rows
  static constexpr int kWarpsN = WARPS_N;          // warps along the keys of a tile
  static constexpr int kMBlocks = M_BLOCKS;        // m16 row blocks per warp
  static constexpr int kWarpRows = 16 * M_BLOCKS;  // query rows per warp
  static constexpr int kWarpKeys = BN / WARPS_N;   // keys of a tile per warp
  static constexpr int BM = kWarpRows * WARPS_M;   // query rows per CTA
  static constexpr int kWarps = WARPS_M * WARPS_N;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int STAGES = STAGES_;
  static constexpr int MIN_BLOCKS = MIN_BLOCKS_;   // __launch_bounds__: CTAs per SM to fit
  using QTile = SwizzledTile<BM, D>;
  using KVTile = SwizzledTile<BN, D>;
  using Ring = KvRing<KVTile, STAGES>;
  static constexpr int kSmemBytes = QTile::kBytes + Ring::kBytes;  // dynamic: Q, then the ring

  static_assert(M_BLOCKS >= 1 && M_BLOCKS <= 2, "O (M_BLOCKS x 16 x D f32) and S (M_BLOCKS x 16 x BN f32) must fit in 255 registers");
  static_assert(D % 64 == 0 && D <= 256, "the swizzle needs rows of a multiple of 128 bytes");
  static_assert(BN % WARPS_N == 0 && kWarpKeys % 16 == 0, "a warp's keys feed the PV mma as whole k16 slices");
  static_assert((BN * D / 8) % kThreads == 0, "every thread issues the same number of K/V cp.async per tile");
  static_assert(kSmemBytes * MIN_BLOCKS <= 227 * 1024, "H100: at most 227 KB of shared memory per SM for CTAs");
};

// ---------------------------------------------------------------------------------------------
// Per-warp accumulators: O (MB row blocks x D columns of C fragments) and the online softmax
// state of the two rows (group, group + 8) a thread holds per row block, in log2 units:
//   m: running max of scaled scores, -inf until a visible key was seen
//   l: this thread's partial row sum (its 2 columns of every n8 block); the quad's lanes share
//      one rescale factor, so the quad sum is taken once at the end (quad_sum).
struct OnlineSoftmaxRow {
  float m, l;
};

template <int MB, int D>
struct OAccumulator {
  float o[MB][D / 8][4];
  OnlineSoftmaxRow row[MB][2];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int mi = 0; mi < MB; ++mi) {
#pragma unroll
      for (int db = 0; db < D / 8; ++db) o[mi][db][0] = o[mi][db][1] = o[mi][db][2] = o[mi][db][3] = 0.f;
      row[mi][0] = row[mi][1] = OnlineSoftmaxRow{-INFINITY, 0.f};
    }
  }
};

// LSE in nats of a row from its max m (log2 units) and sum l: ln(2^m * l) = (m + log2 l) ln 2;
// -inf for a row that saw no key (l = 0).
__device__ __forceinline__ float natural_lse(float m, float l) {
  return l > 0.f ? (m + log2f(l)) * kLn2 : -INFINITY;
}

// ---------------------------------------------------------------------------------------------
// The Q operand (A fragments of the warp's row blocks, per k16 slice kk of the head dimension).

// Held in registers: loaded once (one row block; kUnrollK makes every kk a constant index).
template <int D>
struct QInRegisters {
  static constexpr int kUnrollK = D / 16;
  uint32_t a[D / 16][4];
  template <class Tile>
  __device__ __forceinline__ void load(Tile q, int row0, int lane) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) q.ldmatrix_a(a[kk], row0, kk, lane);
  }
  __device__ __forceinline__ void fragment(uint32_t (&out)[4], int mi, int kk, int) const {
#pragma unroll
    for (int e = 0; e < 4; ++e) out[e] = a[kk][e];
  }
};

// Re-read from shared memory per k16 slice (row blocks [row0 + 16 mi, +16)): keeps registers for
// the accumulators when a warp owns two row blocks. The k16 loop is then not unrolled, which keeps
// ptxas from hoisting every slice's fragments (spills at d = 128); only addresses depend on kk.
template <class Tile>
struct QInShared {
  static constexpr int kUnrollK = 1;
  Tile q;
  int row0;
  __device__ __forceinline__ void fragment(uint32_t (&out)[4], int mi, int kk, int lane) const {
    q.ldmatrix_a(out, row0 + 16 * mi, kk, lane);
  }
};

// ---------------------------------------------------------------------------------------------
// The step's operations.

// S = Q K^T over the NK keys of the K tile (K rows are B's columns, so plain ldmatrix of K[n][k]
// yields B fragments; each feeds all MB row blocks).
template <int NK, int D, int MB, class QOp, class Tile>
__device__ __forceinline__ void qk_scores(float (&s)[MB][NK / 8][4], const QOp& q, Tile k, int lane) {
#pragma unroll
  for (int mi = 0; mi < MB; ++mi)
#pragma unroll
    for (int nb = 0; nb < NK / 8; ++nb) s[mi][nb][0] = s[mi][nb][1] = s[mi][nb][2] = s[mi][nb][3] = 0.f;
#pragma unroll(QOp::kUnrollK)
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t qa[MB][4];
#pragma unroll
    for (int mi = 0; mi < MB; ++mi) q.fragment(qa[mi], mi, kk, lane);
#pragma unroll
    for (int np = 0; np < NK / 16; ++np) {
      uint32_t kf[4];
      k.ldmatrix_b(kf, np * 16, kk, lane);
#pragma unroll
      for (int mi = 0; mi < MB; ++mi) {
        mma_m16n8k16_bf16(s[mi][2 * np], qa[mi], kf[0], kf[1]);
        mma_m16n8k16_bf16(s[mi][2 * np + 1], qa[mi], kf[2], kf[3]);
      }
    }
  }
}

// Online softmax for one row block's new tile of NB n8 blocks of scores `s` (masked entries -inf):
// scores are scaled by scale*log2(e) inside one FMA with the max subtraction. Writes the
// probabilities back into `s` and returns, per row half, the factor O must be multiplied by.
template <int NB>
__device__ __forceinline__ void online_softmax_update(float (&s)[NB][4], OnlineSoftmaxRow (&row)[2],
                                                      float scale_log2, float (&alpha)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * h], s[nb][2 * h + 1]));
    mx = quad_max(mx);
    const float m_new = fmaxf(row[h].m, mx * scale_log2);
    // A row with no visible key so far keeps m = -inf; subtract 0 instead (no -inf - -inf NaN).
    const float m_use = (m_new == -INFINITY) ? 0.f : m_new;
    alpha[h] = ex2_approx(row[h].m - m_use);
    float sum = 0.f;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      s[nb][2 * h] = ex2_approx(fmaf(s[nb][2 * h], scale_log2, -m_use));
      s[nb][2 * h + 1] = ex2_approx(fmaf(s[nb][2 * h + 1], scale_log2, -m_use));
      sum += s[nb][2 * h] + s[nb][2 * h + 1];
    }
    row[h].l = row[h].l * alpha[h] + sum;
    row[h].m = m_new;
  }
}

// O = alpha O for one row block (alpha per row half).
template <int DB>
__device__ __forceinline__ void rescale_o(float (&o)[DB][4], const float (&alpha)[2]) {
#pragma unroll
  for (int db = 0; db < DB; ++db) {
    o[db][0] *= alpha[0];
    o[db][1] *= alpha[0];
    o[db][2] *= alpha[1];
    o[db][3] *= alpha[1];
  }
}

// P of keys [16kk, 16kk + 16) as an A fragment: exactly the C fragments of n8 blocks 2kk and
// 2kk + 1, rounded to bf16 (no shared-memory round trip).
template <int NB>
__device__ __forceinline__ void pack_p(uint32_t (&a)[4], const float (&s)[NB][4], int kk) {
  a[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
  a[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
  a[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
  a[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

// O += P V over the NK keys of the V tile (V[key][d] is B[k][n] row-major, so ldmatrix.trans
// yields B fragments; each feeds all MB row blocks).
template <int NK, int MB, int D, class Tile>
__device__ __forceinline__ void pv_accumulate(OAccumulator<MB, D>& acc, const float (&s)[MB][NK / 8][4], Tile v,
                                              int lane) {
#pragma unroll
  for (int kk = 0; kk < NK / 16; ++kk) {
    uint32_t pa[MB][4];
#pragma unroll
    for (int mi = 0; mi < MB; ++mi) pack_p(pa[mi], s[mi], kk);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t vf[4];
      v.ldmatrix_b_trans(vf, kk * 16, dp, lane);
#pragma unroll
      for (int mi = 0; mi < MB; ++mi) {
        mma_m16n8k16_bf16(acc.o[mi][2 * dp], pa[mi], vf[0], vf[1]);
        mma_m16n8k16_bf16(acc.o[mi][2 * dp + 1], pa[mi], vf[2], vf[3]);
      }
    }
  }
}

// One K/V tile for one warp: S = Q K^T on the NK keys of its K and V tiles (views of the warp's
// rows of the ring's tiles), the element mask (MASKED only: partial tiles), the online softmax,
// O = alpha O + P V. `col0` is the key index of the warp's first key; `row_keys(mi, h)` gives the
// keys the thread's row half h of row block mi sees (the kernel maps fragment rows to queries, the
// mask object maps queries to keys).
template <bool MASKED, int MB, int D, class QOp, class Tile, class RowKeys>
__device__ __forceinline__ void attend_tile(OAccumulator<MB, D>& acc, const QOp& q, Tile k, Tile v, int col0,
                                            const RowKeys& row_keys, float scale_log2) {
  constexpr int NK = Tile::kRows;
  const int lane = lane_id();
  float s[MB][NK / 8][4];
  qk_scores<NK, D>(s, q, k, lane);
  float alpha[MB][2];
#pragma unroll
  for (int mi = 0; mi < MB; ++mi) {
    if constexpr (MASKED) {
#pragma unroll
      for (int h = 0; h < 2; ++h) mask_scores(s[mi], h, row_keys(mi, h), col0);
    }
    online_softmax_update(s[mi], acc.row[mi], scale_log2, alpha[mi]);
    rescale_o(acc.o[mi], alpha[mi]);
  }
  pv_accumulate<NK>(acc, s, v, lane);
}

// Visited key tile kt (in the ring as K and V) through the step, for the warp's NK keys starting
// at row key_off of the tiles: the element mask only where the mask object says the tile is
// partial. Both instances come from the one templated step.
template <int NK, int MB, int D, class Mask, class QOp, class Tile, class RowKeys>
__device__ __forceinline__ void attend_key_tile(OAccumulator<MB, D>& acc, const AttnParams& p, const Mask& mask,
                                                int kt, const QOp& q, Tile k, Tile v, int key_off,
                                                const RowKeys& row_keys) {
  const int col0 = kt * Mask::kBN + key_off;
  if (mask.fully_visible(p, kt))
    attend_tile<false>(acc, q, k.template rows<NK>(key_off), v.template rows<NK>(key_off), col0, row_keys, p.scale_log2);
  else
    attend_tile<true>(acc, q, k.template rows<NK>(key_off), v.template rows<NK>(key_off), col0, row_keys, p.scale_log2);
}

}  // namespace attn

// An extern "C" entry point NAME running MAINLOOP<TRAITS, KIND>(p), with launch bounds from the
// traits (threads per CTA, CTAs per SM); src/ops names it in its plan.
#define ATTN_ENTRY(NAME, MAINLOOP, TRAITS, KIND)                                                                  \
  extern "C" __global__ void __launch_bounds__(TRAITS::kThreads, TRAITS::MIN_BLOCKS) NAME(const AttnParams p) { \
    MAINLOOP<TRAITS, KIND>(p);                                                                                   \
  }

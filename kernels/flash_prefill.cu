// Flash-style prefill attention on tensor cores (mma.sync m16n8k16 bf16 -> f32) for sm_90a.
//
// One CTA owns a query tile of BM rows of one (batch, head); each warp owns 16 of those rows, so
// softmax statistics never leave a warp. The CTA streams the key tiles its mask policy lists
// (attn_policy.cuh) through a STAGES-deep ring of K/V buffers filled by cp.async, and for each
// tile computes S = Q K^T (Q fragments held in registers), the online softmax in f32 (exp2 with
// scale*log2(e) folded into one FMA), and O += P V with P taken straight from the S
// accumulators. Fully visible tiles skip the element mask; partial tiles (mask edges, the key
// tail) mask element-wise: both are one templated step function. O is normalized once, staged
// through shared memory for 16-byte coalesced stores, and written once with the LSE.
//
// Shared memory tiles are XOR-swizzled (16-byte chunk c of row r at c ^ (r % 8)) so that every
// ldmatrix and every 16-byte shared access is a single wavefront per 8 rows (no bank conflicts).
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include "attn_params.h"
#include "attn_policy.cuh"
#include "attn_tile.cuh"

namespace {

using attn::SwizzledTile;
using bf16 = __nv_bfloat16;

// Compile-time choices of one kernel instance (the reasoning is in docs/perf-prefill.md).
// Each warp owns MW m16 row blocks (16 * MW query rows): every K/V fragment a warp loads with
// ldmatrix feeds MW mma, so shared-memory bytes per FLOP fall as 1/MW, at the price of MW times the
// S and O accumulator registers.
template <int HEAD_DIM, int WARPS, int MW_, int BLOCK_N, int STAGES_, int MIN_BLOCKS_>
struct FlashTraits {
  static constexpr int D = HEAD_DIM;
  static constexpr int MW = MW_;
  static constexpr int kWarps = WARPS;
  static constexpr int kWarpRows = 16 * MW;
  static constexpr int BM = kWarpRows * kWarps;
  static constexpr int BN = BLOCK_N;
  static constexpr int kThreads = 32 * WARPS;
  static constexpr int STAGES = STAGES_;
  static constexpr int MIN_BLOCKS = MIN_BLOCKS_;
  // With one m16 block per warp the Q fragments (D/16 x 4 registers) fit beside the accumulators
  // and are loaded once; with two they are re-read from shared memory per k16 slice.
  static constexpr bool Q_IN_REGS = (MW == 1);
  static constexpr int kQFrags = Q_IN_REGS ? D / 16 : 1;
  using QTile = SwizzledTile<BM, D>;
  using KVTile = SwizzledTile<BN, D>;
  static constexpr int kStageBytes = 2 * KVTile::kBytes;  // K then V
  static constexpr int kSmemBytes = QTile::kBytes + STAGES * kStageBytes;

  static_assert(MW >= 1 && MW <= 2, "O (MW x 16 x D f32) and S (MW x 16 x BN f32) must fit in 255 registers");
  static_assert(D % 64 == 0 && D <= 256, "the swizzle needs rows of a multiple of 128 bytes");
  static_assert(BN % 16 == 0, "P (BN keys) feeds the PV mma as k16 slices");
  static_assert(STAGES >= 2, "at least double buffering: tile n+1 loads while tile n computes");
  static_assert((BM * D / 8) % kThreads == 0 && (BN * D / 8) % kThreads == 0,
                "every thread issues the same number of 16-byte cp.async per tile (no tail branch)");
  static_assert((kWarpRows * D / 8) % 32 == 0, "the O epilogue moves a warp's rows in whole 16-byte chunks per lane");
  static_assert(kSmemBytes * MIN_BLOCKS <= 227 * 1024, "H100: at most 227 KB of shared memory per SM for CTAs");
  static_assert(kThreads * MIN_BLOCKS * 128 <= 65536 || MIN_BLOCKS == 1,
                "MIN_BLOCKS CTAs must fit the 64K registers of an SM at a useful register budget");
};

// Row-band masks (none / causal / window): 128 x 64 tiles. d=64: 4 warps of 32 rows
// (FlashAttention-2's layout); d=128: 8 warps of 16 rows, because 32 rows of 128-wide O do not fit
// 255 registers without spills (tried: 32 rows with 32-key tiles still spills 20 bytes in the
// unmasked instance). Block-sparse: 64 x 64 tiles, 4 warps of 16 rows, so that the usual 64-token
// block layouts map one block row per query tile.
using TraitsD64 = FlashTraits<64, 4, 2, 64, 3, 2>;
using TraitsD128 = FlashTraits<128, 8, 1, 64, 2, 1>;
using TraitsSparseD64 = FlashTraits<64, 4, 1, 64, 3, 2>;
using TraitsSparseD128 = FlashTraits<128, 4, 1, 64, 2, 2>;

// Issues cp.async for rows [row0, row0 + ROWS) of a [rows, D] bf16 matrix (row stride in
// elements) into a swizzled tile; rows at or beyond `rows_end` are zero-filled (src-size 0, from
// the always-valid row 0 address).
template <class T, int ROWS>
__device__ __forceinline__ void load_tile_async(uint32_t dst, const bf16* g, int row0, int rows_end,
                                                int64_t row_stride) {
  using Tile = SwizzledTile<ROWS, T::D>;
  constexpr int kChunks = T::D / 8;
  constexpr int kPerThread = ROWS * kChunks / T::kThreads;
#pragma unroll
  for (int it = 0; it < kPerThread; ++it) {
    const int c = threadIdx.x + it * T::kThreads;
    const int r = c / kChunks, ch = c % kChunks;
    const bool valid = row0 + r < rows_end;
    const bf16* src = g + (valid ? (int64_t)(row0 + r) * row_stride + ch * 8 : 0);
    attn::cp_async_cg_16(dst + Tile::offset(r, ch), src, valid);
  }
}

// One key tile: S = Q K^T, mask (MASKED only), online softmax, O = alpha O + P V.
// `wr` is this warp's first row inside the query tile, `q0` the tile's first query, `k0` the tile's
// first key.
template <class T, bool MASKED, class Policy>
__device__ __forceinline__ void attend_tile(const AttnParams& p, const Policy& pol, uint32_t sQ, uint32_t sK,
                                            uint32_t sV, const uint32_t (&qf)[T::kQFrags][4],
                                            float (&o)[T::MW][T::D / 8][4],
                                            attn::OnlineSoftmaxRow (&row)[T::MW][2], int q0, int wr, int k0) {
  using KV = typename T::KVTile;
  using QT = typename T::QTile;
  const int lane = threadIdx.x & 31;
  float s[T::MW][T::BN / 8][4];
#pragma unroll
  for (int mi = 0; mi < T::MW; ++mi)
#pragma unroll
    for (int nb = 0; nb < T::BN / 8; ++nb) s[mi][nb][0] = s[mi][nb][1] = s[mi][nb][2] = s[mi][nb][3] = 0.f;

  // S = Q K^T. A fragments of Q (x4 matrices: rows +0..7 / +8..15 of the m16 block, d chunks 2kk
  // and 2kk+1) are re-read per k16 slice to keep registers for the accumulators. K rows are B's
  // columns, so plain ldmatrix of K[n][k] yields B fragments; x4 matrices: (keys +0..7, chunk 2kk),
  // (+0..7, 2kk+1), (+8..15, 2kk), (+8..15, 2kk+1).
  // Not unrolled across k16 slices when MW = 2: keeps ptxas from hoisting every slice's fragments
  // (spills at d = 128); only addresses depend on kk, so nothing is indexed dynamically.
#pragma unroll(T::MW == 1 ? T::D / 16 : 1)
  for (int kk = 0; kk < T::D / 16; ++kk) {
    uint32_t qa[T::MW][4];
#pragma unroll
    for (int mi = 0; mi < T::MW; ++mi) {
      if constexpr (T::Q_IN_REGS) {
#pragma unroll
        for (int e = 0; e < 4; ++e) qa[mi][e] = qf[kk][e];
      } else {
        attn::ldmatrix_x4(qa[mi], sQ + QT::offset(wr + 16 * mi + (lane & 15), 2 * kk + (lane >> 4)));
      }
    }
#pragma unroll
    for (int np = 0; np < T::BN / 16; ++np) {
      uint32_t kf[4];
      attn::ldmatrix_x4(kf, sK + KV::offset(np * 16 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1)));
#pragma unroll
      for (int mi = 0; mi < T::MW; ++mi) {
        attn::mma_m16n8k16_bf16(s[mi][2 * np], qa[mi], kf[0], kf[1]);
        attn::mma_m16n8k16_bf16(s[mi][2 * np + 1], qa[mi], kf[2], kf[3]);
      }
    }
  }

  float alpha[T::MW][2];
#pragma unroll
  for (int mi = 0; mi < T::MW; ++mi) {
    if (MASKED) {
      // Element (row group [+8], keys 2t, 2t+1 of each n-block): -inf outside the row's key range.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const KeyRange r = pol.row_keys(p, q0 + wr + 16 * mi + (lane >> 2) + 8 * h);
#pragma unroll
        for (int nb = 0; nb < T::BN / 8; ++nb) {
          const int j = k0 + nb * 8 + 2 * (lane & 3);
          if (j < r.lo || j >= r.hi) s[mi][nb][2 * h] = -INFINITY;
          if (j + 1 < r.lo || j + 1 >= r.hi) s[mi][nb][2 * h + 1] = -INFINITY;
        }
      }
    }
    attn::online_softmax_update<T::BN / 8>(s[mi], row[mi], p.scale_log2, alpha[mi]);
#pragma unroll
    for (int db = 0; db < T::D / 8; ++db) {
      o[mi][db][0] *= alpha[mi][0];
      o[mi][db][1] *= alpha[mi][0];
      o[mi][db][2] *= alpha[mi][1];
      o[mi][db][3] *= alpha[mi][1];
    }
  }

  // O += P V: the S accumulators of n-blocks 2kk, 2kk+1 are exactly the A fragment of keys
  // [16kk, 16kk+16); V[key][d] is B[k][n] row-major, so ldmatrix.trans yields B fragments.
  // x4 matrices: (keys +0..7, d chunk 2dp), (keys +8..15, 2dp), (+0..7, 2dp+1), (+8..15, 2dp+1).
#pragma unroll
  for (int kk = 0; kk < T::BN / 16; ++kk) {
    uint32_t pa[T::MW][4];
#pragma unroll
    for (int mi = 0; mi < T::MW; ++mi) {
      pa[mi][0] = attn::pack_bf16x2(s[mi][2 * kk][0], s[mi][2 * kk][1]);
      pa[mi][1] = attn::pack_bf16x2(s[mi][2 * kk][2], s[mi][2 * kk][3]);
      pa[mi][2] = attn::pack_bf16x2(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
      pa[mi][3] = attn::pack_bf16x2(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
    }
#pragma unroll
    for (int dp = 0; dp < T::D / 16; ++dp) {
      uint32_t vf[4];
      attn::ldmatrix_x4_trans(vf, sV + KV::offset(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * dp + (lane >> 4)));
#pragma unroll
      for (int mi = 0; mi < T::MW; ++mi) {
        attn::mma_m16n8k16_bf16(o[mi][2 * dp], pa[mi], vf[0], vf[1]);
        attn::mma_m16n8k16_bf16(o[mi][2 * dp + 1], pa[mi], vf[2], vf[3]);
      }
    }
  }
}

// grid (ceil(seq_q / BM), heads, batch), block kThreads, dynamic smem kSmemBytes.
template <class T, int KIND>
__device__ __forceinline__ void flash_prefill(const AttnParams& p) {
  using Policy = typename attn::MaskPolicy<KIND, T::BM, T::BN>::type;
  using QT = typename T::QTile;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sQ = attn::smem_u32(smem);
  const uint32_t sKV = sQ + QT::kBytes;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wr = warp * T::kWarpRows;  // this warp's first row in the tile
  // Causal and window tiles near the bottom are the heaviest: schedule them first.
  const int q_tile = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.heads / p.kv_heads);
  const int q0 = q_tile * T::BM;
  const bf16* q = reinterpret_cast<const bf16*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride;
  const bf16* k = reinterpret_cast<const bf16*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const bf16* v = reinterpret_cast<const bf16*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;

  Policy pol;
  pol.init(p, q_tile, 0, attn::ceil_div(p.seq_k, T::BN));
  const int n_tiles = pol.num_tiles();

  float o[T::MW][T::D / 8][4];
  attn::OnlineSoftmaxRow row[T::MW][2];
#pragma unroll
  for (int mi = 0; mi < T::MW; ++mi) {
#pragma unroll
    for (int db = 0; db < T::D / 8; ++db) o[mi][db][0] = o[mi][db][1] = o[mi][db][2] = o[mi][db][3] = 0.f;
    row[mi][0] = row[mi][1] = attn::OnlineSoftmaxRow{-INFINITY, 0.f};
  }

  uint32_t qf[T::kQFrags][4];
  if (n_tiles > 0) {
    // Prologue: Q and tile 0 in the first group, tiles 1 .. STAGES-2 in their own; always commit
    // so that group counts are the same for every query tile.
    load_tile_async<T, T::BM>(sQ, q, q0, p.seq_q, p.q_row_stride);
#pragma unroll
    for (int st = 0; st < T::STAGES - 1; ++st) {
      if (st < n_tiles) {
        const int kt = pol.tile(p, st);
        const uint32_t dst = sKV + st * T::kStageBytes;
        load_tile_async<T, T::BN>(dst, k, kt * T::BN, p.seq_k, p.k_row_stride);
        load_tile_async<T, T::BN>(dst + T::KVTile::kBytes, v, kt * T::BN, p.seq_k, p.v_row_stride);
      }
      attn::cp_async_commit();
    }

    for (int n = 0; n < n_tiles; ++n) {
      attn::cp_async_wait<T::STAGES - 2>();  // tile n (and Q) landed (this thread's copies) ...
      __syncthreads();  // ... everyone's, and every warp is done with tile n-1's buffer
      const int pf = n + T::STAGES - 1;
      if (pf < n_tiles) {
        const int kt = pol.tile(p, pf);
        const uint32_t dst = sKV + (pf % T::STAGES) * T::kStageBytes;
        load_tile_async<T, T::BN>(dst, k, kt * T::BN, p.seq_k, p.k_row_stride);
        load_tile_async<T, T::BN>(dst + T::KVTile::kBytes, v, kt * T::BN, p.seq_k, p.v_row_stride);
      }
      attn::cp_async_commit();
      if constexpr (T::Q_IN_REGS) {
        if (n == 0) {
          // A fragments of this warp's 16 rows for every k16 slice of the head dimension.
#pragma unroll
          for (int kk = 0; kk < T::D / 16; ++kk)
            attn::ldmatrix_x4(qf[kk], sQ + QT::offset(wr + (lane & 15), 2 * kk + (lane >> 4)));
        }
      }
      const int kt = pol.tile(p, n);
      const uint32_t sK = sKV + (n % T::STAGES) * T::kStageBytes;
      if (pol.full(p, kt))
        attend_tile<T, false>(p, pol, sQ, sK, sK + T::KVTile::kBytes, qf, o, row, q0, wr, kt * T::BN);
      else
        attend_tile<T, true>(p, pol, sQ, sK, sK + T::KVTile::kBytes, qf, o, row, q0, wr, kt * T::BN);
    }
    __syncthreads();  // every warp is done reading Q: its buffer stages O below
  }

  // Epilogue: the quad's partial sums make the row sum; O / l (0 for a row that saw no key),
  // LSE = ln(2^m * l) = (m + log2 l) * ln 2, -inf for a row that saw no key. This warp's rows of
  // bf16 O are staged in its own rows of the Q buffer, then stored as 16-byte chunks row by row.
#pragma unroll
  for (int mi = 0; mi < T::MW; ++mi) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float l = attn::quad_sum(row[mi][hh].l);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int r = wr + 16 * mi + (lane >> 2) + 8 * hh;
      if ((lane & 3) == 0 && q0 + r < p.seq_q) {
        const float lse = l > 0.f ? (row[mi][hh].m + log2f(l)) * 0.69314718055994531f : -INFINITY;
        reinterpret_cast<float*>(p.lse)[((int64_t)b * p.heads + h) * p.seq_q + q0 + r] = lse;
      }
#pragma unroll
      for (int db = 0; db < T::D / 8; ++db) {
        const uint32_t val = attn::pack_bf16x2(o[mi][db][2 * hh] * inv, o[mi][db][2 * hh + 1] * inv);
        attn::st_shared_b32(sQ + QT::offset(r, db) + 4 * (lane & 3), val);
      }
    }
  }
  __syncthreads();
  bf16* out = reinterpret_cast<bf16*>(p.o) + b * p.o_batch_stride + h * p.o_head_stride;
  constexpr int kChunks = T::D / 8;
#pragma unroll
  for (int it = 0; it < T::kWarpRows * kChunks / 32; ++it) {
    const int c = lane + 32 * it;
    const int r = wr + c / kChunks, ch = c % kChunks;
    const uint4 val = attn::ld_shared_v4(sQ + QT::offset(r, ch));
    if (q0 + r < p.seq_q) attn::st_global_v4(out + (int64_t)(q0 + r) * p.o_row_stride + ch * 8, val);
  }
}

}  // namespace

#define ATTN_FLASH_ENTRY(NAME, TRAITS, KIND)                                                        \
  extern "C" __global__ void __launch_bounds__(TRAITS::kThreads, TRAITS::MIN_BLOCKS) NAME(const AttnParams p) { \
    flash_prefill<TRAITS, KIND>(p);                                                                 \
  }

ATTN_FLASH_ENTRY(attn_flash_prefill_d64_none, TraitsD64, ATTN_MASK_NONE)
ATTN_FLASH_ENTRY(attn_flash_prefill_d64_causal, TraitsD64, ATTN_MASK_CAUSAL)
ATTN_FLASH_ENTRY(attn_flash_prefill_d64_window, TraitsD64, ATTN_MASK_WINDOW)
ATTN_FLASH_ENTRY(attn_flash_prefill_d64_sparse, TraitsSparseD64, ATTN_MASK_BLOCK_SPARSE)
ATTN_FLASH_ENTRY(attn_flash_prefill_d128_none, TraitsD128, ATTN_MASK_NONE)
ATTN_FLASH_ENTRY(attn_flash_prefill_d128_causal, TraitsD128, ATTN_MASK_CAUSAL)
ATTN_FLASH_ENTRY(attn_flash_prefill_d128_window, TraitsD128, ATTN_MASK_WINDOW)
ATTN_FLASH_ENTRY(attn_flash_prefill_d128_sparse, TraitsSparseD128, ATTN_MASK_BLOCK_SPARSE)

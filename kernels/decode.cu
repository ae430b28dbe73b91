// Split-KV decode attention (Flash-Decoding style) on tensor cores for sm_90a, plus the combine.
//
// Decode is memory-bound: a few query tokens (seq_q <= 16) against a long K/V cache. The design
// goal is to read every visible K/V byte once, with 16-byte cp.async, on every SM:
//
// * GQA packing: one CTA serves ALL query heads of one KV head. Its query tile's rows are the
//   (token, head-in-group) pairs, row = token * group + g, so K/V of that KV head are streamed
//   once for all of them (not once per query head). Rows beyond seq_q * group are zero padding.
// * Split-KV: the key tiles the mask object lists (attn_tile_mask.cuh, one mask query tile
//   holding every token) are cut into num_splits runs of tiles_per_split tiles; grid.x enumerates
//   (row chunk, split), so batch * kv_heads * splits CTAs fill the SMs even at batch 1. Each
//   split writes its normalized partial O and LSE in f32; attn_decode_combine merges them with
//   log-sum-exp weights. With one split the kernel writes bf16 O and LSE directly.
// * Only the union of the tokens' visible keys is read (decode_key_union): K/V rows of a tile
//   outside it are zero-filled by cp.async with src-size 0, which reads nothing.
// * Two warp layouts (kWarpsM x kWarpsN): "r16" (rows <= 16: 1 x 4 warps, each warp takes 16 of
//   the tile's 64 keys for the one m16 row block, merged across warps in shared memory at the
//   end) and "r128" (up to 128 rows: 8 x 1 warps, each warp one m16 row block over all 64 keys;
//   warps whose rows are all padding skip the math). More than 128 rows use several row chunks.
// * Per tile, each warp runs the shared step (attn_warp.cuh) on its keys of the K/V ring's tiles.
//
// Splits that see no visible key (and rows that see none) have LSE -inf and O = 0; the combine
// gives such splits weight 0 and a row with no visible key at all gets O = 0, LSE = -inf.
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include "attn_decode.cuh"
#include "attn_params.h"
#include "attn_warp.cuh"

namespace {

using bf16 = __nv_bfloat16;

// One m16 row block per warp (kWarpRows = 16), K/V tiles of 64 keys (the Rust plan's TILE_K).
template <int HEAD_DIM, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS>
struct DecodeTraits : attn::MmaTiling<HEAD_DIM, 64, WARPS_M, WARPS_N, 1, STAGES, MIN_BLOCKS> {
  using Base = attn::MmaTiling<HEAD_DIM, 64, WARPS_M, WARPS_N, 1, STAGES, MIN_BLOCKS>;
  // Epilogue staging of f32 O per (warp column, row): rows padded by 8 floats so that the
  // fragment stores (8 rows x 8 floats per instruction) hit every bank exactly twice.
  static constexpr int kORowFloats = HEAD_DIM + 8;
  static constexpr int kOStageBytes = WARPS_N * Base::BM * kORowFloats * 4;

  static_assert(HEAD_DIM <= 128, "O fragments stay in registers");
  static_assert(kOStageBytes <= Base::Ring::kBytes, "the O staging reuses the K/V ring");
};

// D128: 3 stages of 32 KB (64 KB in flight per CTA, two CTAs per SM); D64: 4 stages of 16 KB.
using R16D64 = DecodeTraits<64, 1, 4, 4, 3>;
using R16D128 = DecodeTraits<128, 1, 4, 3, 2>;
using R128D64 = DecodeTraits<64, 8, 1, 4, 1>;
using R128D128 = DecodeTraits<128, 8, 1, 3, 1>;

// grid (row_chunks * num_splits, kv_heads, batch), block kThreads, dynamic smem kSmemBytes.
template <class T, int KIND>
__device__ __forceinline__ void decode_split(const AttnParams& p) {
  using KVTile = typename T::KVTile;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float s_m[T::kWarpsN * T::BM], s_l[T::kWarpsN * T::BM];
  const typename T::QTile sq{attn::smem_u32(smem)};
  const typename T::Ring ring{sq.base + T::QTile::kBytes};

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp / T::kWarpsN, wn = warp % T::kWarpsN;
  const int split = blockIdx.x % p.num_splits, chunk = blockIdx.x / p.num_splits;
  const int hk = blockIdx.y, b = blockIdx.z;
  const int group = p.heads / p.kv_heads;
  const int rows = p.seq_q * group;       // (token, head-in-group) pairs of this KV head
  const int row0 = chunk * T::BM;         // this CTA's first row
  const bf16* k = reinterpret_cast<const bf16*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const bf16* v = reinterpret_cast<const bf16*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;

  // The key tiles every token needs, then this split's run of them.
  attn::TileMask<KIND, attn::DECODE_MAX_SEQ_Q, T::BN> mask;
  mask.init(p, 0);
  const int n_begin = split * p.tiles_per_split;
  const int n_tiles = max(min(n_begin + p.tiles_per_split, mask.num_key_tiles()) - n_begin, 0);
  const KeyRange kv_valid = attn::decode_key_union<KIND>(p);

  // The two rows this thread holds in C fragments, their tokens and key ranges (padding rows
  // take the last token: their results are never stored).
  KeyRange rk[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row0 + wm * 16 + (lane >> 2) + 8 * h;
    rk[h] = mask.row_keys(p, min(r / group, p.seq_q - 1));
  }
  const auto row_keys = [&](int, int h) { return rk[h]; };
  const bool warp_active = row0 + wm * 16 < rows;  // warp-uniform: some row of this warp is real

  attn::OAccumulator<1, T::D> acc;
  acc.zero();

  if (n_tiles > 0) {
    // Q rows (token, head) of this CTA in a group of their own, older than the ring's. The Q load
    // and the ring's prologue are rolled loops here: unrolled, they cost registers (docs/KERNELS.md).
    const bf16* q = reinterpret_cast<const bf16*>(p.q) + b * p.q_batch_stride;
    sq.template cp_async_rows<T::kThreads, false>(
        q, row0, attn::GqaQueryRows{rows, group, hk * group, p.q_row_stride, p.q_head_stride});
    attn::cp_async_commit();
    const auto load_kv = [&](int n, KVTile kn, KVTile vn) {
      const int k0 = mask.key_tile(p, n_begin + n) * T::BN;
      kn.template cp_async_rows<T::kThreads>(k, k0, attn::RowsIn{p.k_row_stride, kv_valid});
      vn.template cp_async_rows<T::kThreads>(v, k0, attn::RowsIn{p.v_row_stride, kv_valid});
    };
    ring.template fill<false>(n_tiles, load_kv);
    attn::cp_async_wait<T::STAGES - 1>();  // Q landed
    __syncthreads();
    attn::QInRegisters<T::D> qf;
    qf.load(sq, wm * 16, lane);

    for (int n = 0; n < n_tiles; ++n) {
      ring.wait_and_refill(n, n_tiles, load_kv);
      if (warp_active)
        attn::attend_key_tile<T::kWarpKeys>(acc, p, mask, mask.key_tile(p, n_begin + n), qf, ring.k(n), ring.v(n),
                                            wn * T::kWarpKeys, row_keys);
    }
    attn::cp_async_wait<0>();
    __syncthreads();  // every warp is done with the K/V ring: it becomes the O staging area
  }

  // Stage each warp's unnormalized O (f32), row max (log2 units) and row sum in shared memory.
  const uint32_t sO = ring.base;  // f32 [kWarpsN][BM][kORowFloats]
  attn::stage_warp_slices<T>(acc, sO, s_m, s_l, wm, wn, lane);
  __syncthreads();

  // Merge the kWarpsN key slices of every row and write 4 columns per thread: O / l and the LSE.
  // A split (or row) that saw no visible key has l = 0: O = 0 and LSE = -inf.
  const bool direct = p.num_splits == 1;
  constexpr int kUnits = T::D / 4;
  for (int u = tid; u < T::BM * kUnits; u += T::kThreads) {
    const int r = u / kUnits, c4 = u % kUnits;
    const int gr = row0 + r;
    if (gr >= rows) continue;
    const attn::MergedUnit mu = attn::merge_warp_slices<T>(sO, s_m, s_l, r, c4);
    const int tok = gr / group, h = hk * group + gr % group;
    if (direct) {
      bf16* out = reinterpret_cast<bf16*>(p.o) + b * p.o_batch_stride + (int64_t)tok * p.o_row_stride +
                  (int64_t)h * p.o_head_stride + 4 * c4;
      const float4 o = mu.o();
      *reinterpret_cast<uint2*>(out) = make_uint2(attn::pack_bf16x2(o.x, o.y), attn::pack_bf16x2(o.z, o.w));
      if (c4 == 0) reinterpret_cast<float*>(p.lse)[((int64_t)b * p.heads + h) * p.seq_q + tok] = mu.lse;
    } else {
      const int64_t prow = (((int64_t)split * p.batch + b) * p.heads + h) * p.seq_q + tok;
      *reinterpret_cast<float4*>(reinterpret_cast<float*>(p.scratch) + prow * T::D + 4 * c4) = mu.o();
      if (c4 == 0) reinterpret_cast<float*>(p.scratch_lse)[prow] = mu.lse;
    }
  }
}

// Combine: one CTA of attn::COMBINE_WARPS warps per output row (b, h, token); split s's partial
// of row r is row s * rows + r of the scratch (rows = batch * heads * seq_q, order [b, h, token]).
template <int D>
__device__ __forceinline__ void decode_combine(const AttnParams& p) {
  using Combine = attn::SplitCombine<D>;
  const int64_t rows = (int64_t)p.batch * p.heads * p.seq_q;
  const int64_t row = blockIdx.x;  // [b, h, token], the partials' and the LSE's row order
  const attn::SplitMerge r = Combine::merge({reinterpret_cast<const float*>(p.scratch),
                                         reinterpret_cast<const float*>(p.scratch_lse), row, rows, p.num_splits});
  const int tok = (int)(row % p.seq_q), h = (int)((row / p.seq_q) % p.heads);
  const int b = (int)(row / ((int64_t)p.seq_q * p.heads));
  if (threadIdx.x < D) {
    bf16* out = reinterpret_cast<bf16*>(p.o) + b * p.o_batch_stride + (int64_t)tok * p.o_row_stride +
                (int64_t)h * p.o_head_stride;
    out[threadIdx.x] = Combine::column(r, threadIdx.x);
  }
  if (threadIdx.x == 0) reinterpret_cast<float*>(p.lse)[row] = r.lse();
}

}  // namespace

ATTN_ENTRY(attn_decode_d64_r16_none, decode_split, R16D64, ATTN_MASK_NONE)
ATTN_ENTRY(attn_decode_d64_r16_causal, decode_split, R16D64, ATTN_MASK_CAUSAL)
ATTN_ENTRY(attn_decode_d64_r16_window, decode_split, R16D64, ATTN_MASK_WINDOW)
ATTN_ENTRY(attn_decode_d64_r16_sparse, decode_split, R16D64, ATTN_MASK_BLOCK_SPARSE)
ATTN_ENTRY(attn_decode_d128_r16_none, decode_split, R16D128, ATTN_MASK_NONE)
ATTN_ENTRY(attn_decode_d128_r16_causal, decode_split, R16D128, ATTN_MASK_CAUSAL)
ATTN_ENTRY(attn_decode_d128_r16_window, decode_split, R16D128, ATTN_MASK_WINDOW)
ATTN_ENTRY(attn_decode_d128_r16_sparse, decode_split, R16D128, ATTN_MASK_BLOCK_SPARSE)
ATTN_ENTRY(attn_decode_d64_r128_none, decode_split, R128D64, ATTN_MASK_NONE)
ATTN_ENTRY(attn_decode_d64_r128_causal, decode_split, R128D64, ATTN_MASK_CAUSAL)
ATTN_ENTRY(attn_decode_d64_r128_window, decode_split, R128D64, ATTN_MASK_WINDOW)
ATTN_ENTRY(attn_decode_d64_r128_sparse, decode_split, R128D64, ATTN_MASK_BLOCK_SPARSE)
ATTN_ENTRY(attn_decode_d128_r128_none, decode_split, R128D128, ATTN_MASK_NONE)
ATTN_ENTRY(attn_decode_d128_r128_causal, decode_split, R128D128, ATTN_MASK_CAUSAL)
ATTN_ENTRY(attn_decode_d128_r128_window, decode_split, R128D128, ATTN_MASK_WINDOW)
ATTN_ENTRY(attn_decode_d128_r128_sparse, decode_split, R128D128, ATTN_MASK_BLOCK_SPARSE)

// grid batch * heads * seq_q (one CTA per output row), block 32 * attn::COMBINE_WARPS.
extern "C" __global__ void __launch_bounds__(32 * attn::COMBINE_WARPS) attn_decode_combine_d64(const AttnParams p) {
  decode_combine<64>(p);
}
extern "C" __global__ void __launch_bounds__(32 * attn::COMBINE_WARPS) attn_decode_combine_d128(const AttnParams p) {
  decode_combine<128>(p);
}

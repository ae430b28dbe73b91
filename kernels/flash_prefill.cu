// Flash-style prefill attention on tensor cores (mma.sync m16n8k16 bf16 -> f32) for sm_90a.
//
// One CTA owns a query tile of BM rows of one (batch, head); each warp owns 16 or 32 of those rows
// (M_BLOCKS m16 row blocks), so softmax statistics never leave a warp. The CTA streams the key
// tiles its mask object lists (attn_tile_mask.cuh) through the STAGES-deep K/V ring
// (attn_tile.cuh), and runs the shared warp step (attn_warp.cuh) on each: S = Q K^T, the element
// mask on partial tiles only, the online softmax in f32, O = alpha O + P V. O is normalized once,
// staged through shared memory for 16-byte coalesced stores, and written once with the LSE.
//
// Shared memory tiles are XOR-swizzled (16-byte chunk c of row r at c ^ (r % 8)) so that every
// ldmatrix and every 16-byte shared access is a single wavefront per 8 rows (no bank conflicts).
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <type_traits>
#include "attn_params.h"
#include "attn_warp.cuh"

namespace {

using bf16 = __nv_bfloat16;

// Compile-time choices of one kernel instance (the reasoning is in docs/perf-prefill.md).
// Each warp owns M_BLOCKS m16 row blocks (16 * M_BLOCKS query rows): every K/V fragment a warp
// loads with ldmatrix feeds M_BLOCKS mma, so shared-memory bytes per FLOP fall as 1/M_BLOCKS, at
// the price of M_BLOCKS times the S and O accumulator registers.
template <int HEAD_DIM, int WARPS, int M_BLOCKS, int BLOCK_N, int STAGES, int MIN_BLOCKS>
struct FlashTraits : attn::MmaTiling<HEAD_DIM, BLOCK_N, WARPS, 1, M_BLOCKS, STAGES, MIN_BLOCKS> {
  using Base = attn::MmaTiling<HEAD_DIM, BLOCK_N, WARPS, 1, M_BLOCKS, STAGES, MIN_BLOCKS>;
  // With one m16 block per warp the Q fragments (D/16 x 4 registers) fit beside the accumulators
  // and are loaded once; with two they are re-read from shared memory per k16 slice.
  static constexpr bool Q_IN_REGS = (M_BLOCKS == 1);
  using QOperand = std::conditional_t<Q_IN_REGS, attn::QInRegisters<HEAD_DIM>, attn::QInShared<typename Base::QTile>>;

  static_assert((Base::kWarpRows * HEAD_DIM / 8) % 32 == 0,
                "the O epilogue moves a warp's rows in whole 16-byte chunks per lane");
  static_assert(Base::kThreads * MIN_BLOCKS * 128 <= 65536 || MIN_BLOCKS == 1,
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

// grid (ceil(seq_q / BM), heads, batch), block kThreads, dynamic smem kSmemBytes.
template <class T, int KIND>
__device__ __forceinline__ void flash_prefill(const AttnParams& p) {
  using KVTile = typename T::KVTile;
  extern __shared__ __align__(128) unsigned char smem[];
  const typename T::QTile sq{attn::smem_u32(smem)};
  const typename T::Ring ring{sq.base + T::QTile::kBytes};

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

  attn::TileMask<KIND, T::BM, T::BN> mask;
  mask.init(p, q_tile);
  const int n_tiles = mask.num_key_tiles();

  attn::OAccumulator<T::kMBlocks, T::D> acc;
  acc.zero();
  typename T::QOperand qop;
  if constexpr (!T::Q_IN_REGS) qop = typename T::QOperand{sq, wr};
  // The queries of this thread's fragment rows: row half hh of row block mi.
  const auto row_keys = [&](int mi, int hh) { return mask.row_keys(p, q0 + wr + 16 * mi + (lane >> 2) + 8 * hh); };

  if (n_tiles > 0) {
    // Q joins the ring's first group (tile 0), so the first wait covers it.
    sq.template cp_async_rows<T::kThreads>(q, q0, attn::RowsBelow{p.q_row_stride, p.seq_q});
    const auto load_kv = [&](int n, KVTile kn, KVTile vn) {
      const int k0 = mask.key_tile(p, n) * T::BN;
      kn.template cp_async_rows<T::kThreads>(k, k0, attn::RowsBelow{p.k_row_stride, p.seq_k});
      vn.template cp_async_rows<T::kThreads>(v, k0, attn::RowsBelow{p.v_row_stride, p.seq_k});
    };
    ring.fill(n_tiles, load_kv);
    for (int n = 0; n < n_tiles; ++n) {
      ring.wait_and_refill(n, n_tiles, load_kv);
      if constexpr (T::Q_IN_REGS) {
        if (n == 0) qop.load(sq, wr, lane);  // A fragments of this warp's 16 rows, every k16 slice
      }
      attn::attend_key_tile<T::BN>(acc, p, mask, mask.key_tile(p, n), qop, ring.k(n), ring.v(n), 0, row_keys);
    }
    __syncthreads();  // every warp is done reading Q: its buffer stages O below
  }

  // Epilogue: the quad's partial sums make the row sum; O / l (0 for a row that saw no key) and
  // the LSE. This warp's rows of bf16 O are staged in its own rows of the Q buffer, then stored as
  // 16-byte chunks row by row.
#pragma unroll
  for (int mi = 0; mi < T::kMBlocks; ++mi) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float l = attn::quad_sum(acc.row[mi][hh].l);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int r = wr + 16 * mi + (lane >> 2) + 8 * hh;
      if ((lane & 3) == 0 && q0 + r < p.seq_q)
        reinterpret_cast<float*>(p.lse)[((int64_t)b * p.heads + h) * p.seq_q + q0 + r] =
            attn::natural_lse(acc.row[mi][hh].m, l);
#pragma unroll
      for (int db = 0; db < T::D / 8; ++db) {
        const uint32_t val = attn::pack_bf16x2(acc.o[mi][db][2 * hh] * inv, acc.o[mi][db][2 * hh + 1] * inv);
        attn::st_shared_b32(sq.chunk(r, db) + 4 * (lane & 3), val);
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
    const uint4 val = attn::ld_shared_v4(sq.chunk(r, ch));
    if (q0 + r < p.seq_q) attn::st_global_v4(out + (int64_t)(q0 + r) * p.o_row_stride + ch * 8, val);
  }
}

}  // namespace

ATTN_ENTRY(attn_flash_prefill_d64_none, flash_prefill, TraitsD64, ATTN_MASK_NONE)
ATTN_ENTRY(attn_flash_prefill_d64_causal, flash_prefill, TraitsD64, ATTN_MASK_CAUSAL)
ATTN_ENTRY(attn_flash_prefill_d64_window, flash_prefill, TraitsD64, ATTN_MASK_WINDOW)
ATTN_ENTRY(attn_flash_prefill_d64_sparse, flash_prefill, TraitsSparseD64, ATTN_MASK_BLOCK_SPARSE)
ATTN_ENTRY(attn_flash_prefill_d128_none, flash_prefill, TraitsD128, ATTN_MASK_NONE)
ATTN_ENTRY(attn_flash_prefill_d128_causal, flash_prefill, TraitsD128, ATTN_MASK_CAUSAL)
ATTN_ENTRY(attn_flash_prefill_d128_window, flash_prefill, TraitsD128, ATTN_MASK_WINDOW)
ATTN_ENTRY(attn_flash_prefill_d128_sparse, flash_prefill, TraitsSparseD128, ATTN_MASK_BLOCK_SPARSE)

// Serving decode on sm_90a: one step of a ragged batch of sequences whose K/V cache lives in
// pages (bf16, or fp8 e4m3 with a bf16 scale per token and KV head), split by the host's
// load-balanced plan (attn_paged.h, src/paged/plan.rs), plus the combine of the split sequences.
// Instantiated by decode_paged.cu (bf16 cache, and the combine) and decode_paged_fp8.cu.
//
// One CTA = one work item (a run of one sequence's visited 64-key tiles) x one KV head x one
// chunk of at most BM (token, head-in-group) rows: every query head of the KV head, so each K/V
// byte is loaded once for all of them (GQA packing, as the contiguous decode), on tensor cores
// through the shared warp step (attn_warp.cuh).
//
// Warps: the decode layouts: "r16" 1 x 4 consumer warps, each 16 keys of every tile for the one
// m16 row block, plus a producer warp; "r128" 8 x 1 warps, each an m16 row block over all 64
// keys, warp 0 producing between the CTA's barriers. Per tile, the producer
//   - finds the tile's pages: each lane of its warp owns one (tile, page chunk) of a window of
//     32 / chunks tiles (a chunk is min(page, 64) keys); a lane reads a block-table entry (and,
//     block-sparse, a block column) only where it differs from the previous lane's, so each
//     distinct entry is read once per CTA (r16: those loads stall only the producer warp);
//   - waits until the stage is free, then issues one bulk copy per page chunk for K and one for
//     V, of exactly the chunk's loaded rows (the keys some row of the sequence sees: never a page
//     tail, never keys a window leaves out), completing on the stage's full mbarrier, and (fp8)
//     the tokens' scales by 4-byte cp.async with cp.async.mbarrier.arrive on the same barrier.
// The consumers wait for the stage, restage it into the swizzled bf16 tiles the ldmatrix
// addressing wants (bulk copies cannot swizzle; an fp8 cache is converted here, exactly), release
// the stage, and run the warp step. r16 warps restage and read only their own 16 keys, so they
// synchronize with __syncwarp alone and release the stage one arrival each; r128 warps share the
// whole tile (two named barriers per tile, one release).
//
// fp8: e4m3 codes become bf16 exactly (every e4m3 value is a bf16 value). The codes are placed
// into f16 bit patterns (e4m3 -> f16 is a shift: the value times 2^-8, subnormals included), then
// widened to f32 and packed to bf16; the 2^8 is folded into the token's scale, which multiplies
// its score column (K) and its probability column (V) in f32 (attn::NoColumnScales's hook).
//
// Outputs: a sequence with one split writes bf16 O and LSE; a split of a sequence with several
// writes its normalized f32 O and LSE at its partial rows, and attn_decode_paged_combine merges
// them (and writes O = 0, LSE = -inf for a sequence with no split, i.e. no visible key).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include "attn_decode.cuh"
#include "attn_paged.h"
#include "attn_params.h"
#include "attn_ptx.cuh"
#include "attn_sm90.cuh"
#include "attn_warp.cuh"

namespace paged {

using bf16 = __nv_bfloat16;
constexpr int kTileK = 64;  // keys per tile (src/paged/plan.rs: PlanOptions::tile_k)

constexpr int align_up(int x, int a) { return (x + a - 1) / a * a; }

// KV_BYTES: 2 (bf16 cache) or 1 (e4m3). STAGES: bulk-copy stages in flight per CTA.
template <int HEAD_DIM, int KV_BYTES, int WARPS_M, int WARPS_N, int STAGES, int MIN_BLOCKS>
struct PagedTraits : attn::MmaTiling<HEAD_DIM, kTileK, WARPS_M, WARPS_N, 1, 2, MIN_BLOCKS> {
  using Base = attn::MmaTiling<HEAD_DIM, kTileK, WARPS_M, WARPS_N, 1, 2, MIN_BLOCKS>;
  using typename Base::KVTile;
  using typename Base::QTile;
  using Ring = attn::MbarrierRing<STAGES>;
  static constexpr bool kFp8 = KV_BYTES == 1;
  static constexpr int kStages = STAGES;
  static constexpr int kConsumers = Base::kThreads;  // consumer threads (named barrier 1)
  // r16: a producer warp of its own (5 warps: at most 2 per SM sub-partition, so ptxas may give
  // each thread up to 255 registers). r128: consumer warp 0 also produces, between the CTA's
  // barriers (a 9th warp would put 3 warps on one sub-partition and cap registers at 168).
  static constexpr bool kSpecialized = WARPS_N > 1;
  static constexpr int kThreadsAll = kConsumers + (kSpecialized ? 32 : 0);
  static constexpr int kProducerWarp = kSpecialized ? Base::kWarps : 0;
  static constexpr int kRowBytes = HEAD_DIM * KV_BYTES;  // one token's row of one KV head in a pool
  static constexpr int kKvStageBytes = kTileK * kRowBytes;
  // A stage: K rows, V rows (in key order, the tile's first key first), then (fp8) the K scales
  // (bf16 per token) and, 192 bytes after them, the V scales: a warp reading one key's K and V
  // scale per lane pair hits two halves of the banks (128 bytes apart would be the same banks).
  static constexpr int kScaleVOff = kFp8 ? 3 * kTileK : 0;
  static constexpr int kStageBytes = 2 * kKvStageBytes + (kFp8 ? 6 * kTileK : 0);
  // Shared memory: ring barriers, stage headers, f32 column scales, Q, the bf16 K and V tiles the
  // warp step reads, the stages. The epilogue's O staging overlays the K/V tiles and the stages.
  static constexpr int kBarOff = 0;
  static constexpr int kHdrOff = Ring::kBytes;
  // f32 column scales: K at kScaleOff, V 320 bytes after (80 words: the other 16 banks).
  static constexpr int kScaleOff = kHdrOff + 16 * STAGES;
  static constexpr int kColVOff = 4 * kTileK + 64;
  static constexpr int kQOff = align_up(kScaleOff + kColVOff + 4 * kTileK, 128);
  static constexpr int kKOff = kQOff + QTile::kBytes;
  static constexpr int kVOff = kKOff + KVTile::kBytes;
  static constexpr int kStagingOff = kVOff + KVTile::kBytes;
  static constexpr int kSmemBytes = kStagingOff + STAGES * kStageBytes;
  static constexpr int kORowFloats = HEAD_DIM + 8;  // as decode.cu: conflict-free fragment stores
  static constexpr int kOStageBytes = WARPS_N * Base::BM * kORowFloats * 4;

  static_assert(HEAD_DIM <= 128, "O fragments stay in registers");
  static_assert(kStageBytes % 128 == 0, "every stage (bulk copy destinations) starts 128-byte aligned");
  static_assert(kRowBytes % 16 == 0, "bulk copies move whole 16-byte units: a row is one or more");
  static_assert(kKOff + kOStageBytes <= kSmemBytes, "the O staging fits over the K/V tiles and the stages");
  static_assert(kSmemBytes * MIN_BLOCKS + 1024 * MIN_BLOCKS <= 228 * 1024, "H100: shared memory per SM");
  static_assert(WARPS_N == 1 || WARPS_M == 1, "either warps split a tile's keys (r16) or its rows (r128)");
};

// The e4m3 codes of 8 elements (code k in byte k % 4 of word k / 4) as 8 bf16 (element k in half
// k % 2 of word k / 2), each the code's value times 2^-8, exactly: a code placed in the high byte
// of a half (sign at bit 15, exponent at 14..11, mantissa at 10..8) becomes the f16 pattern with
// the exponent at 13..10 and the mantissa at 9..7, whose value is the e4m3 value times 2^-8
// (e4m3 subnormals land on f16 subnormals of the same digits); cvt.f32.f16 and cvt.rn.bf16x2.f32
// are exact on these values (at most 4 significant bits).
__device__ __forceinline__ uint32_t e4m3x2_to_bf16x2_scaled(uint32_t halves) {
  const uint32_t f16 = (halves & 0x80008000u) | ((halves >> 1) & 0x3F803F80u);
  __half2 h;
  memcpy(&h, &f16, 4);
  const float2 f = __half22float2(h);
  return attn::pack_bf16x2(f.x, f.y);
}

__device__ __forceinline__ uint4 e4m3x8_to_bf16x8_scaled(uint2 w) {
  return make_uint4(e4m3x2_to_bf16x2_scaled(__byte_perm(w.x, 0, 0x1404)),
                    e4m3x2_to_bf16x2_scaled(__byte_perm(w.x, 0, 0x3424)),
                    e4m3x2_to_bf16x2_scaled(__byte_perm(w.y, 0, 0x1404)),
                    e4m3x2_to_bf16x2_scaled(__byte_perm(w.y, 0, 0x3424)));
}

// 2^8, the factor e4m3x8_to_bf16x8_scaled leaves out, folded into each token's scale.
constexpr float kFp8Unscale = 256.0f;

// Per-key scales of the warp's keys for the warp step (f32 in shared memory, the warp's first key
// at `k` and `v`): column 2t (+1) of n8 block nb is key 8 nb + 2t (+1).
struct SharedColumnScales {
  uint32_t k, v;
  template <int NB>
  __device__ __forceinline__ static void apply(float (&s)[NB][4], uint32_t base, int lane) {
    const uint32_t at = base + 8 * (lane & 3);
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      const float2 f = attn::ld_shared_f32x2(at + 32 * nb);
      s[nb][0] *= f.x;
      s[nb][1] *= f.y;
      s[nb][2] *= f.x;
      s[nb][3] *= f.y;
    }
  }
  template <int NB>
  __device__ __forceinline__ void scores(float (&s)[NB][4], int lane) const {
    apply(s, k, lane);
  }
  template <int NB>
  __device__ __forceinline__ void probs(float (&s)[NB][4], int lane) const {
    apply(s, v, lane);
  }
};

// What a CTA learns from the plan and the batch (read by one thread, shared through memory).
struct CtaInfo {
  int seq, split, tile_begin, tile_end;  // the work item
  int q_start, new_tokens, keys, block_off;
  int partial_base, single, sparse_begin, pad;
};

// The AttnParams the shared mask objects read, for one sequence: its new tokens as seq_q, its
// keys as seq_k, the step's mask (block-sparse: one block row holds every new token).
__device__ __forceinline__ AttnParams mask_params(const PagedDecodeParams& p, const CtaInfo& c) {
  AttnParams a{};
  a.seq_q = c.new_tokens;
  a.seq_k = c.keys;
  a.mask_kind = p.mask_kind;
  a.window_left = p.window_left;
  a.window_right = p.window_right;
  a.sparse_block_q = attn::DECODE_MAX_SEQ_Q;
  a.sparse_block_k = p.sparse_block_k;
  a.scale = p.scale;
  a.scale_log2 = p.scale_log2;
  return a;
}

// The producer: finds each tile's pages and issues its copies (as described at the top), run by
// the 32 lanes of one warp. `loaded` are the keys of the sequence any of its rows sees as one
// interval (row-band masks; block-sparse: [0, keys)), `first_tile` the first visited tile
// (row-band). Per lane: one (tile, page chunk) of the current window of tiles.
template <class T, int KIND>
struct Producer {
  static constexpr bool kSparse = KIND == ATTN_MASK_BLOCK_SPARSE;
  const PagedDecodeParams& p;
  const CtaInfo& c;
  int hk, first_tile;
  KeyRange loaded;
  int lane, lc, chunk_shift, window, my_t, my_c;
  // The last block / page seen by the previous window (-1: none yet) and their values.
  int carried_bi = -1, carried_col = 0, carried_pi = -1, carried_page = 0;
  // This lane's (tile, chunk) of the current window: its key tile, loaded keys [a, b), page; the
  // tile's bytes (each of K and V); the window's first tile.
  int kt = 0, a = 0, b = 0, page = 0, tile_bytes = 0, w0;
  bool valid = false;

  __device__ __forceinline__ Producer(const PagedDecodeParams& p_, const CtaInfo& c_, int hk_, KeyRange loaded_,
                                      int first_tile_)
      : p(p_), c(c_), hk(hk_), first_tile(first_tile_), loaded(loaded_) {
    lane = attn::lane_id();
    lc = max(6 - p.page_shift, 0);  // log2 of the page chunks per tile
    chunk_shift = 6 - lc;           // a chunk is min(page, 64) keys
    window = 32 >> lc;
    my_t = lane >> lc;
    my_c = lane & ((1 << lc) - 1);
    w0 = -window;
  }

  // The window of tiles [w0, w0 + window): each lane's key tile, loaded keys, page, bytes.
  __device__ __forceinline__ void prepare(int first) {
    w0 = first;
    const unsigned upto_me = 0xffffffffu >> (31 - lane);
    const int t = w0 + my_t;
    const bool in = t < c.tile_end - c.tile_begin;
    const int vi = c.tile_begin + t;  // visited-tile index in the sequence
    if constexpr (kSparse) {
      const int per_block = p.sparse_block_k / kTileK;
      const int* blocks = reinterpret_cast<const int*>(p.sparse_blocks) + c.sparse_begin;
      const int bi = vi / per_block;
      const int prev_bi = my_t == 0 ? carried_bi : (vi - 1) / per_block;
      const bool loader = in && my_c == 0 && bi != prev_bi;
      const int col = loader ? blocks[bi] : 0;
      const unsigned m = __ballot_sync(0xffffffffu, loader) & upto_me;
      const int got = __shfl_sync(0xffffffffu, col, m ? 31 - __clz(m) : 0);
      const int my_col = m ? got : carried_col;
      kt = my_col * per_block + vi % per_block;
      const int last = 31 - __clz(__ballot_sync(0xffffffffu, in));  // lane 0 is in
      carried_bi = __shfl_sync(0xffffffffu, bi, last);
      carried_col = __shfl_sync(0xffffffffu, my_col, last);
    } else {
      kt = first_tile + vi;
    }
    const int lo_c = kt * kTileK + (my_c << chunk_shift);
    a = max(lo_c, loaded.lo);
    b = min(lo_c + (1 << chunk_shift), loaded.hi);
    valid = in && a < b;
    // Pages never decrease along the lanes' keys: the previous valid lane's page index is the
    // running maximum, and a lane reads the table only where its page index is new.
    const int pi = a >> p.page_shift;
    int run = valid ? pi : -1;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, run, o);
      if (lane >= o) run = max(run, y);
    }
    int before = __shfl_up_sync(0xffffffffu, run, 1);
    before = max(lane == 0 ? -1 : before, carried_pi);
    const bool loader = valid && pi != before;
    const int pg = loader ? reinterpret_cast<const int*>(p.block_table)[c.block_off + pi] : 0;
    const unsigned m = __ballot_sync(0xffffffffu, loader) & upto_me;
    const int got = __shfl_sync(0xffffffffu, pg, m ? 31 - __clz(m) : 0);
    page = m ? got : carried_page;
    const unsigned vs = __ballot_sync(0xffffffffu, valid);
    const int last_valid = vs ? 31 - __clz(vs) : 0;
    const int last_pi = __shfl_sync(0xffffffffu, pi, last_valid);
    const int last_page = __shfl_sync(0xffffffffu, page, last_valid);
    if (vs) {
      carried_pi = last_pi;
      carried_page = last_page;
    }
    // Bytes of the tile (each of K and V): the sum over its chunk lanes.
    int bytes = valid ? (b - a) * T::kRowBytes : 0;
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      const int y = __shfl_xor_sync(0xffffffffu, bytes, o);
      if (o < (1 << lc)) bytes += y;
    }
    tile_bytes = bytes;
  }

  // Tile n (tiles in order, its stage free) into `st`, completing on `full`; its header (key
  // tile, loaded keys) at `header`.
  __device__ __forceinline__ void issue(int n, uint32_t st, uint32_t full, uint32_t header) {
    if (n >= w0 + window) prepare(n);
    const bool mine = my_t == n - w0;
    if constexpr (T::kFp8) {
      // The scales of keys 2 lane and 2 lane + 1 of the tile, from the lane that owns their chunk.
      const int src = ((n - w0) << lc) + ((2 * lane) >> chunk_shift);
      const int s_kt = __shfl_sync(0xffffffffu, kt, src);
      const int s_a = __shfl_sync(0xffffffffu, a, src), s_b = __shfl_sync(0xffffffffu, b, src);
      const int s_page = __shfl_sync(0xffffffffu, page, src);
      const int j = s_kt * kTileK + 2 * lane;
      const bool v0 = j >= s_a && j < s_b, v1 = j + 1 >= s_a && j + 1 < s_b;
      const int64_t slot = (((int64_t)s_page * p.kv_heads + hk) << p.page_shift) + (j & (p.page_size - 1));
      const bf16* kscale = reinterpret_cast<const bf16*>(p.k_scale) + slot;
      const bf16* vscale = reinterpret_cast<const bf16*>(p.v_scale) + slot;
      const uint32_t dk = st + 2 * T::kKvStageBytes + 4 * lane, dv = dk + T::kScaleVOff;
      if (v0) {
        // Both keys, or (the sequence's last key) the first alone: the rest is zero-filled.
        attn::cp_async_ca_4(dk, kscale, v1 ? 4 : 2);
        attn::cp_async_ca_4(dv, vscale, v1 ? 4 : 2);
      } else if (v1) {
        // A window starting at an odd key: its first scale alone (cp.async moves 4 bytes).
        attn::st_shared_u16(dk + 2, *reinterpret_cast<const unsigned short*>(kscale + 1));
        attn::st_shared_u16(dv + 2, *reinterpret_cast<const unsigned short*>(vscale + 1));
      }
      __syncwarp();  // the plain stores above happen before the arrival below (release)
    }
    if (mine && my_c == 0) {
      const int k0 = kt * kTileK;
      attn::st_shared_v4(header, make_uint4(kt, max(k0, loaded.lo), min(k0 + kTileK, loaded.hi), 0));
      attn::mbarrier_arrive_expect_tx(full, 2 * tile_bytes);
    }
    if (mine && valid) {
      const int64_t row = (((int64_t)page * p.kv_heads + hk) << p.page_shift) + (a & (p.page_size - 1));
      const uint32_t dst = st + (a - kt * kTileK) * T::kRowBytes;
      const uint32_t bytes = (b - a) * T::kRowBytes;
      attn::bulk_copy_g2s(dst, reinterpret_cast<const unsigned char*>(p.k_pool) + row * T::kRowBytes, bytes, full);
      attn::bulk_copy_g2s(dst + T::kKvStageBytes, reinterpret_cast<const unsigned char*>(p.v_pool) + row * T::kRowBytes,
                          bytes, full);
    }
    if constexpr (T::kFp8) attn::cp_async_mbarrier_arrive_noinc(full);
  }
};

// Rows [r0, r0 + NR) of a landed stage into the bf16 tiles (and, fp8, the f32 column scales), by
// NT threads, `u` this thread's index among them. Keys outside [lo, hi) were not loaded: their
// rows become zeros (a masked key must not bring a NaN into P V) and their scales 0.
template <class T, int NR, int NT>
__device__ __forceinline__ void restage(uint32_t st, int k0, int lo, int hi, typename T::KVTile sk,
                                        typename T::KVTile sv, uint32_t scales, int r0, int u) {
  constexpr int kChunks = T::D / 8;  // 16-byte bf16 chunks of a row
  constexpr int kPerKv = NR * kChunks;
  static_assert(kPerKv % NT == 0, "every thread restages the same number of chunks of K and of V");
  // Consecutive threads take consecutive chunks of a row: the stage is read linearly, and each
  // 8 threads' 16-byte stores hit one row's 8 swizzled chunks (all 32 banks).
#pragma unroll
  for (int it = 0; it < 2 * kPerKv / NT; ++it) {
    const int x = u + it * NT;
    const bool is_v = x >= kPerKv;
    const int rem = is_v ? x - kPerKv : x;
    const int r = r0 + rem / kChunks, ch = rem % kChunks;
    const int key = k0 + r;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (key >= lo && key < hi) {
      const uint32_t row = st + (is_v ? T::kKvStageBytes : 0) + r * T::kRowBytes;
      if constexpr (T::kFp8)
        val = e4m3x8_to_bf16x8_scaled(attn::ld_shared_v2(row + 8 * ch));
      else
        val = attn::ld_shared_v4(row + 16 * ch);
    }
    attn::st_shared_v4((is_v ? sv : sk).chunk(r, ch), val);
  }
  if constexpr (T::kFp8) {
    for (int x = u; x < 2 * NR; x += NT) {
      const bool is_v = x >= NR;
      const int r = r0 + (is_v ? x - NR : x);
      const int key = k0 + r;
      float f = 0.f;
      if (key >= lo && key < hi) {
        const uint32_t bits = attn::ld_shared_u16(st + 2 * T::kKvStageBytes + (is_v ? T::kScaleVOff : 0) + 2 * r);
        f = __uint_as_float(bits << 16) * kFp8Unscale;
      }
      attn::st_shared_f32(scales + (is_v ? T::kColVOff : 0) + 4 * r, f);
    }
  }
}

// grid (num_items * kv_heads, row chunks), block T::kThreadsAll, dynamic smem T::kSmemBytes.
template <class T, int KIND>
__device__ __forceinline__ void paged_split(const PagedDecodeParams& p) {
  using KVTile = typename T::KVTile;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ CtaInfo s_info;
  __shared__ float s_m[T::kWarpsN * T::BM], s_l[T::kWarpsN * T::BM];
  const uint32_t base = attn::smem_u32(smem);
  const typename T::Ring ring{base + T::kBarOff};
  const uint32_t headers = base + T::kHdrOff, scales = base + T::kScaleOff, staging = base + T::kStagingOff;
  const typename T::QTile sq{base + T::kQOff};
  const KVTile sk{base + T::kKOff}, sv{base + T::kVOff};

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int hk = blockIdx.x % p.kv_heads, item = blockIdx.x / p.kv_heads;
  if (tid == 0) {
    // r16 warps release a stage one arrival each (r128 does not use the empty barriers). fp8: the
    // producer's 32 lanes also arrive once their scale copies landed.
    ring.init(1 + (T::kFp8 ? 32 : 0), T::kWarps);
    const int4 it = *reinterpret_cast<const int4*>(reinterpret_cast<const PagedWorkItem*>(p.work_items) + item);
    const int s = it.x;
    const int* qo = reinterpret_cast<const int*>(p.q_offsets);
    const int* po = reinterpret_cast<const int*>(p.partial_offsets);
    CtaInfo c;
    c.seq = s;
    c.split = it.y;
    c.tile_begin = it.z;
    c.tile_end = it.w;
    c.q_start = qo[s];
    c.new_tokens = qo[s + 1] - c.q_start;
    c.keys = reinterpret_cast<const int*>(p.seq_lens)[s];
    c.block_off = reinterpret_cast<const int*>(p.block_offsets)[s];
    c.partial_base = po[s];
    c.single = po[s + 1] == c.partial_base;  // no partial rows: the sequence's only split
    c.sparse_begin = KIND == ATTN_MASK_BLOCK_SPARSE ? reinterpret_cast<const int*>(p.sparse_offsets)[s] : 0;
    c.pad = 0;
    s_info = c;
  }
  __syncthreads();
  const CtaInfo c = s_info;
  const AttnParams a = mask_params(p, c);
  const int group = p.heads / p.kv_heads;
  const int rows = c.new_tokens * group;  // (token, head-in-group) rows of this KV head
  const int row0 = blockIdx.y * T::BM;
  if (row0 >= rows) return;  // a row chunk this sequence does not have (every thread leaves)
  const int n_tiles = c.tile_end - c.tile_begin;
  const KeyRange loaded = attn::decode_key_union<KIND>(a);
  attn::TileMask<KIND, attn::DECODE_MAX_SEQ_Q, kTileK> mask;
  if constexpr (KIND != ATTN_MASK_BLOCK_SPARSE) mask.init(a, 0);

  const auto stage_at = [&](int n) { return staging + ring.stage(n) * T::kStageBytes; };
  const auto header_at = [&](int n) { return headers + 16 * ring.stage(n); };
  Producer<T, KIND> producer(p, c, hk, loaded, loaded.lo / kTileK);
  if constexpr (T::kSpecialized) {
    if (warp == T::kProducerWarp) {
      for (int n = 0; n < n_tiles; ++n) {
        ring.producer_acquire(n);
        producer.issue(n, stage_at(n), ring.full(n), header_at(n));
      }
      return;
    }
  } else {
    // Warp 0 fills every stage first (fresh stages: nothing to wait for).
    if (warp == T::kProducerWarp)
      for (int n = 0; n < min(T::kStages, n_tiles); ++n) producer.issue(n, stage_at(n), ring.full(n), header_at(n));
  }

  const int wm = warp / T::kWarpsN, wn = warp % T::kWarpsN;
  KeyRange rk[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row0 + wm * 16 + (lane >> 2) + 8 * h;
    rk[h] = mask.row_keys(a, min(r / group, c.new_tokens - 1));  // padding rows: never stored
  }
  const auto row_keys = [&](int, int h) { return rk[h]; };
  const bool warp_active = row0 + wm * 16 < rows;

  attn::OAccumulator<1, T::D> acc;
  acc.zero();
  {
    const bf16* q = reinterpret_cast<const bf16*>(p.q) + (int64_t)c.q_start * p.heads * T::D;
    sq.template cp_async_rows<T::kConsumers, false>(
        q, row0, attn::GqaQueryRows{rows, group, hk * group, (int64_t)p.heads * T::D, T::D});
    attn::cp_async_commit();
    attn::cp_async_wait<0>();
    attn::named_barrier_sync(1, T::kConsumers);
  }
  attn::QInRegisters<T::D> qf;
  qf.load(sq, wm * 16, lane);

  const int key_off = wn * T::kWarpKeys;
  for (int n = 0; n < n_tiles; ++n) {
    ring.consumer_wait(n);
    const uint32_t st = stage_at(n);
    const uint4 hdr = attn::ld_shared_v4(header_at(n));
    const int kt = static_cast<int>(hdr.x), lo = static_cast<int>(hdr.y), hi = static_cast<int>(hdr.z);
    if constexpr (T::kWarpsN > 1) {
      // This warp's keys only: its own rows of the tiles, read by its own ldmatrix.
      __syncwarp();  // every lane's reads of the previous tile are done
      restage<T, T::kWarpKeys, 32>(st, kt * kTileK, lo, hi, sk, sv, scales, key_off, lane);
      __syncwarp();
      if (lane == 0) ring.consumer_release(n);
    } else {
      attn::named_barrier_sync(1, T::kConsumers);  // every warp is done with the previous tile
      restage<T, kTileK, T::kConsumers>(st, kt * kTileK, lo, hi, sk, sv, scales, 0, tid);
      attn::named_barrier_sync(1, T::kConsumers);
      // Every warp has read the stage: warp 0 refills it with tile n + STAGES (the barrier
      // orders the reads before the copies; the empty barriers are not used here).
      if (warp == T::kProducerWarp && n + T::kStages < n_tiles) {
        const int next = n + T::kStages;
        producer.issue(next, stage_at(next), ring.full(next), header_at(next));
      }
    }
    if (warp_active) {
      if constexpr (T::kFp8) {
        const SharedColumnScales cs{scales + 4 * key_off, scales + T::kColVOff + 4 * key_off};
        attn::attend_key_tile<T::kWarpKeys>(acc, a, mask, kt, qf, sk, sv, key_off, row_keys, cs);
      } else {
        attn::attend_key_tile<T::kWarpKeys>(acc, a, mask, kt, qf, sk, sv, key_off, row_keys);
      }
    }
  }
  // Every consumer is done with the tiles and every copy has landed (each tile's full barrier
  // was waited for): the tiles and stages become the O staging area.
  attn::named_barrier_sync(1, T::kConsumers);

  // Stage each warp's unnormalized O (f32), row max (log2 units) and row sum (attn_decode.cuh).
  const uint32_t sO = base + T::kKOff;  // f32 [kWarpsN][BM][kORowFloats]
  attn::stage_warp_slices<T>(acc, sO, s_m, s_l, wm, wn, lane);
  attn::named_barrier_sync(1, T::kConsumers);

  // Merge the kWarpsN key slices of every row; write 4 columns per thread: O / l and the LSE.
  constexpr int kUnits = T::D / 4;
  for (int u = tid; u < T::BM * kUnits; u += T::kConsumers) {
    const int r = u / kUnits, c4 = u % kUnits;
    const int gr = row0 + r;
    if (gr >= rows) continue;
    const attn::MergedUnit mu = attn::merge_warp_slices<T>(sO, s_m, s_l, r, c4);
    const int tok = gr / group, h = hk * group + gr % group;
    if (c.single) {
      const int64_t orow = (int64_t)(c.q_start + tok) * p.heads + h;
      bf16* out = reinterpret_cast<bf16*>(p.o) + orow * T::D + 4 * c4;
      const float4 o = mu.o();
      *reinterpret_cast<uint2*>(out) = make_uint2(attn::pack_bf16x2(o.x, o.y), attn::pack_bf16x2(o.z, o.w));
      if (c4 == 0) reinterpret_cast<float*>(p.lse)[orow] = mu.lse;
    } else {
      const int64_t prow = c.partial_base + ((int64_t)c.split * c.new_tokens + tok) * p.heads + h;
      *reinterpret_cast<float4*>(reinterpret_cast<float*>(p.partial_o) + prow * T::D + 4 * c4) = mu.o();
      if (c4 == 0) reinterpret_cast<float*>(p.partial_lse)[prow] = mu.lse;
    }
  }
}

// The combine: one CTA of attn::COMBINE_WARPS warps per (sequence, query head), grid (num_seqs,
// heads). A sequence with one split was written by the split kernel: its CTAs leave after reading
// its split count. Otherwise each token's row is one SplitCombine merge: split k's partial of
// token t is row pbase + (k * nt + t) * heads + h.
template <int D>
__device__ __forceinline__ void paged_combine(const PagedDecodeParams& p) {
  __shared__ int s_meta[4];
  using Combine = attn::SplitCombine<D>;
  const int s = blockIdx.x, h = blockIdx.y;
  if (threadIdx.x == 0) {
    const int* so = reinterpret_cast<const int*>(p.split_offsets);
    const int k0 = so[s], count = so[s + 1] - k0;
    s_meta[0] = count;
    if (count != 1) {
      const int* qo = reinterpret_cast<const int*>(p.q_offsets);
      s_meta[1] = reinterpret_cast<const int*>(p.partial_offsets)[s];
      s_meta[2] = qo[s];
      s_meta[3] = qo[s + 1] - s_meta[2];
    }
  }
  __syncthreads();
  const int count = s_meta[0];
  if (count == 1) return;
  const int pbase = s_meta[1], q0 = s_meta[2], nt = s_meta[3];
  const int64_t stride = (int64_t)nt * p.heads;  // partial rows from one split to the next
  for (int t = 0; t < nt; ++t) {
    const attn::SplitMerge r = Combine::merge({reinterpret_cast<const float*>(p.partial_o),
                                           reinterpret_cast<const float*>(p.partial_lse),
                                           pbase + (int64_t)t * p.heads + h, stride, count});
    const int64_t orow = (int64_t)(q0 + t) * p.heads + h;
    if (threadIdx.x < D) reinterpret_cast<bf16*>(p.o)[orow * D + threadIdx.x] = Combine::column(r, threadIdx.x);
    if (threadIdx.x == 0) reinterpret_cast<float*>(p.lse)[orow] = r.lse();
    __syncthreads();  // the combine's shared memory is reused by the next token
  }
}

}  // namespace paged

// An extern "C" split-kernel entry NAME running paged_split<TRAITS, KIND>.
#define PAGED_ENTRY(NAME, TRAITS, KIND)                                                                         \
  extern "C" __global__ void __launch_bounds__(TRAITS::kThreadsAll, TRAITS::MIN_BLOCKS) NAME(const PagedDecodeParams p) { \
    paged::paged_split<TRAITS, KIND>(p);                                                                       \
  }

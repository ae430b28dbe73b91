// Flash prefill for Hopper (sm_90a): warp-specialized, TMA-fed, wgmma attention with a persistent
// tile scheduler. One mainloop for every mask, head dimension and input type; the instances are
// in kernels/flash_hopper_*.cu and the reasoning behind their sizes in docs/perf-hopper.md.
//
// Roles (one CTA per SM, looping over work tiles = (query tile, head, batch)):
//  - warpgroup 0, the producer: gives registers back (setmaxnreg.dec); one elected thread walks
//    the CTA's work tiles, asks the mask object which key tiles each visits, and issues TMA loads:
//    Q once per work tile, K and V of every visited key tile into a ring of STAGES stages. Each
//    stage has full and empty mbarriers for K and for V; Q has its own pair.
//  - warpgroups 1..C, the consumers (setmaxnreg.inc): each owns 64 query rows of the tile and
//    runs, per visited key tile n, S_n = Q K_n^T (wgmma, A = Q and B = K from shared memory),
//    the mask (partial tiles only), the online softmax in registers, and O += P_{n-1} V_{n-1}
//    (wgmma, A = P from registers, B = V from shared memory). The GEMMs of consecutive consumer
//    warpgroups take turns (ping-pong on named barriers), so one warpgroup's softmax runs while
//    the other's GEMMs occupy the tensor cores, and inside a warpgroup the softmax of tile n runs
//    while the PV GEMM of tile n-1 is in flight (wgmma.wait_group 1).
//  - epilogue per consumer: O / l (times the V descale for e4m3) to bf16, stmatrix into shared
//    memory (the Q tile's space for bf16), fence.proxy.async, then one thread's TMA store; LSE by
//    plain stores. The producer may load the next tile's Q once every consumer's store has read
//    its shared memory (the Q-empty barrier).
//
// The producer publishes each work tile ({query tile, head, batch, key tiles}, -1 tiles when the
// CTA is done) and each stage's key-tile index in shared memory before the mbarrier arrive that
// completes with them; the consumers read them after the matching wait (release / acquire).
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <type_traits>
#include "attn_mask.cuh"
#include "attn_params.h"
#include "attn_ptx.cuh"
#include "attn_sm90.cuh"
#include "attn_tile_mask.cuh"
#include "attn_warp.cuh"

namespace attn {

// ---------------------------------------------------------------------------------------------
// Input types: what differs between bf16 and e4m3 inputs is the wgmma form, the V operand's
// major-ness and how P becomes an A fragment. Output is bf16 either way.

struct HopperBf16 {
  using Elem = __nv_bfloat16;
  static constexpr bool kFp8 = false;
  static constexpr int kKeysPerStep = 16;  // keys per P fragment (k16)
  template <int SCALE_D, int NB>
  __device__ __forceinline__ static void qk(float (&s)[NB][4], uint64_t a, uint64_t b) {
    wgmma_ss_bf16<SCALE_D, 0>(s, a, b);
  }
  template <int NB>
  __device__ __forceinline__ static void pv(float (&o)[NB][4], const uint32_t (&a)[4], uint64_t b) {
    wgmma_rs_bf16<1, 1>(o, a, b);  // V is [key][d]: N (= d) contiguous, so MN-major
  }
  template <class VTile>
  __device__ __forceinline__ static uint64_t v_desc(VTile v, int ks) {
    return v.desc_mn_major(ks);
  }
  // P of keys [16 ks, 16 ks + 16) as an A fragment: exactly the accumulator's n8 blocks 2ks and
  // 2ks + 1 rounded to bf16 (pack_p), no shuffles.
  template <int NB, int NP>
  __device__ __forceinline__ static void to_a(uint32_t (&pf)[NP][4], const float (&s)[NB][4]) {
    static_assert(NP * 2 == NB, "one A fragment per two n8 blocks");
#pragma unroll
    for (int ks = 0; ks < NP; ++ks) pack_p(pf[ks], s, ks);
  }
};

// e4m3: wgmma's 8-bit A fragment (k32) holds, per thread, columns 4t..4t+3 and 16+4t..16+4t+3 of
// rows g and g + 8, while the accumulator gives it columns 2t, 2t+1, 8+2t, 8+2t+1 (+16). Instead
// of shuffling, the kernel keeps P in accumulator order and expects V's keys permuted to match:
// inside every 32 keys, A column 16h + 4t + e holds key 16h + 8(e/2) + 2t + e%2 (h, e < 2 and 4),
// and the host writes V^T (K-major, as 8-bit wgmma requires) in that key order
// (attnjoule::ops::fp8::key_order, src/ops/fp8.rs).
struct HopperE4m3 {
  using Elem = uint8_t;  // e4m3 bits
  static constexpr bool kFp8 = true;
  static constexpr int kKeysPerStep = 32;  // keys per P fragment (k32)
  template <int SCALE_D, int NB>
  __device__ __forceinline__ static void qk(float (&s)[NB][4], uint64_t a, uint64_t b) {
    wgmma_ss_e4m3<SCALE_D>(s, a, b);
  }
  template <int NB>
  __device__ __forceinline__ static void pv(float (&o)[NB][4], const uint32_t (&a)[4], uint64_t b) {
    wgmma_rs_e4m3<1>(o, a, b);  // V^T is [d][key]: K-major
  }
  template <class VTile>
  __device__ __forceinline__ static uint64_t v_desc(VTile v, int ks) {
    return v.desc_k_major(0, ks);
  }
  template <int NB, int NP>
  __device__ __forceinline__ static void to_a(uint32_t (&pf)[NP][4], const float (&s)[NB][4]) {
    static_assert(NP * 4 == NB, "one A fragment per four n8 blocks");
#pragma unroll
    for (int ks = 0; ks < NP; ++ks) {
      const int j = 4 * ks;
      pf[ks][0] = pack_e4m3x4(s[j][0], s[j][1], s[j + 1][0], s[j + 1][1]);
      pf[ks][1] = pack_e4m3x4(s[j][2], s[j][3], s[j + 1][2], s[j + 1][3]);
      pf[ks][2] = pack_e4m3x4(s[j + 2][0], s[j + 2][1], s[j + 3][0], s[j + 3][1]);
      pf[ks][3] = pack_e4m3x4(s[j + 2][2], s[j + 2][3], s[j + 3][2], s[j + 3][3]);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Traits of one instance: tile shape, ring depth, roles and their register budgets, shared memory.
template <class POLICY, int HEAD_DIM, int BLOCK_M, int BLOCK_N, int STAGES_>
struct HopperTraits {
  using Policy = POLICY;
  using Elem = typename POLICY::Elem;
  static constexpr int D = HEAD_DIM, BM = BLOCK_M, BN = BLOCK_N, STAGES = STAGES_;
  static constexpr int kConsumers = BM / 64;  // one warpgroup per 64 query rows
  static constexpr int kThreads = 128 * (1 + kConsumers);
  // The register file is 64K per SM; one CTA per SM. The producer keeps the minimum that its one
  // thread's address and mask arithmetic needs; the consumers share the rest.
  static constexpr int kProducerRegs = kConsumers == 2 ? 24 : 32;
  static constexpr int kConsumerRegs = kConsumers == 2 ? 240 : 160;
  static constexpr int MIN_BLOCKS = 1;

  using QTile = TmaTile<Elem, BM, D>;
  using KTile = TmaTile<Elem, BN, D>;
  using VTile = std::conditional_t<POLICY::kFp8, TmaTile<Elem, D, BN>, TmaTile<Elem, BN, D>>;
  using OTile = TmaTile<__nv_bfloat16, BM, D>;
  // bf16: O (same bytes, same layout) reuses Q's space: each warpgroup writes O only over its own
  // 64 rows of Q, after its last wgmma read them. e4m3: O is twice Q's size and its rows would
  // cross other warpgroups' Q rows, so it gets its own space.
  static constexpr bool kOAliasesQ = !POLICY::kFp8;
  static constexpr int kQOffset = 0;
  static constexpr int kOOffset = kOAliasesQ ? 0 : QTile::kBytes;
  static constexpr int kKOffset = kOAliasesQ ? QTile::kBytes : QTile::kBytes + OTile::kBytes;
  static constexpr int kVOffset = kKOffset + STAGES * KTile::kBytes;
  static constexpr int kSyncOffset = kVOffset + STAGES * VTile::kBytes;
  // + the mbarriers and published indices (HopperSync), + 1 KiB to align the base to 1024 bytes.
  static constexpr int kSmemBytes = kSyncOffset + 256 + 1024;

  static constexpr int kQkSteps = QTile::kRowBytes / 32;  // k-steps of 32 bytes over the head dim
  static constexpr int kPvSteps = BN / POLICY::kKeysPerStep;
  static constexpr int kSchedBarrier = 1;               // named barriers 1..C: GEMM turns
  static constexpr int kEpiBarrier = 1 + kConsumers;    // C+1..2C: one warpgroup's epilogue

  static_assert(BM % 64 == 0 && kConsumers >= 2 && kConsumers <= 3, "two or three consumer warpgroups");
  static_assert(kProducerRegs * 128 + kConsumerRegs * 128 * kConsumers <= 65536,
                "the setmaxnreg budgets must fit the SM's 64K registers");
  static_assert(BN % POLICY::kKeysPerStep == 0 && BN % 16 == 0 && BN <= 256, "wgmma N: a multiple of 16 up to 256");
  static_assert(D == 64 || D == 128 || D == 256, "head dims 64, 128, 256");
  static_assert(kSmemBytes <= 232448, "H100/H200: at most 227 KB of shared memory per block");
  static_assert(2 * kConsumers + 1 <= 16, "named barriers 0..15");
};

// The mbarriers and the indices the producer publishes, at the end of dynamic shared memory.
template <int STAGES>
struct alignas(16) HopperSync {
  uint64_t q_full, q_empty;
  uint64_t k_full[STAGES], k_empty[STAGES], v_full[STAGES], v_empty[STAGES];
  int4 work;  // query tile, head, batch, key tiles (-1: no more work for this CTA)
  int stage_kt[STAGES];
};

// The CTA's view of its shared memory.
template <class T>
struct HopperSmem {
  typename T::QTile q;
  typename T::OTile o;
  uint32_t k_base, v_base;
  HopperSync<T::STAGES>* sync;

  __device__ __forceinline__ typename T::KTile k(int s) const {
    return typename T::KTile{k_base + static_cast<uint32_t>(s * T::KTile::kBytes)};
  }
  __device__ __forceinline__ typename T::VTile v(int s) const {
    return typename T::VTile{v_base + static_cast<uint32_t>(s * T::VTile::kBytes)};
  }
  __device__ __forceinline__ uint32_t bar(const uint64_t& b) const { return smem_u32(&b); }
};

struct HopperMaps {
  const CUtensorMap* q;
  const CUtensorMap* k;
  const CUtensorMap* v;
  const CUtensorMap* o;
};

// Work tile w of the persistent loop: query tiles from the last (the longest under causal and
// window masks) to the first, and within one query tile every (batch, head), heads sharing a KV
// head next to each other (their CTAs read the same K/V from L2 at about the same time). CTA c
// takes, in round r, work tile r * G + c for even r and r * G + G - 1 - c for odd r (G CTAs): a
// static longest-first schedule whose rounds alternate direction, so that the CTA that got the
// longest tile of one round gets the shortest of the next (docs/perf-hopper.md: the causal tail).
struct WorkTile {
  int q_tile, head, batch;
  __device__ __forceinline__ static WorkTile of(const AttnParams& p, int w, int n_q_tiles) {
    const int bh = p.batch * p.heads;
    const int rest = w % bh;
    return WorkTile{n_q_tiles - 1 - w / bh, rest % p.heads, rest / p.heads};
  }
};

// ---------------------------------------------------------------------------------------------
// The producer: one elected thread of warpgroup 0.
template <class T, int KIND>
__device__ __forceinline__ void hopper_producer(const AttnParams& p, const HopperMaps& maps, const HopperSmem<T>& sm) {
  HopperSync<T::STAGES>& sy = *sm.sync;
  prefetch_tensormap(maps.q);
  prefetch_tensormap(maps.k);
  prefetch_tensormap(maps.v);
  prefetch_tensormap(maps.o);
  const int n_q_tiles = ceil_div(p.seq_q, T::BM);
  const int total = n_q_tiles * p.heads * p.batch;
  const int group = p.heads / p.kv_heads;
  int it = 0;    // key tiles loaded so far (the ring position)
  int item = 0;  // work tiles published so far (= the round)
  for (;; ++item) {
    const int w = item * gridDim.x + ((item & 1) ? gridDim.x - 1 - blockIdx.x : blockIdx.x);
    if (w >= total) break;  // only the last round can run out
    const WorkTile wt = WorkTile::of(p, w, n_q_tiles);
    const int hk = wt.head / group;
    HopperTileMask<KIND, T::BM, T::BN> mask;
    mask.init(p, wt.q_tile);
    const int n = mask.num_key_tiles();
    int kt = mask.first_key_tile(p);
    // K and V of the work tile's i-th key tile into the next stage, once the consumers freed it.
    const auto load_kv = [&] {
      const int s = it % T::STAGES;
      const uint32_t free_parity = ((it / T::STAGES) & 1) ^ 1;
      mbarrier_wait(sm.bar(sy.k_empty[s]), free_parity);
      sy.stage_kt[s] = kt;
      mbarrier_arrive_expect_tx(sm.bar(sy.k_full[s]), T::KTile::kBytes);
      sm.k(s).tma_load(maps.k, sm.bar(sy.k_full[s]), 0, kt * T::BN, hk, wt.batch);
      mbarrier_wait(sm.bar(sy.v_empty[s]), free_parity);
      mbarrier_arrive_expect_tx(sm.bar(sy.v_full[s]), T::VTile::kBytes);
      if constexpr (T::Policy::kFp8) {
        sm.v(s).tma_load(maps.v, sm.bar(sy.v_full[s]), kt * T::BN, 0, hk, wt.batch);  // V^T: keys innermost
      } else {
        sm.v(s).tma_load(maps.v, sm.bar(sy.v_full[s]), 0, kt * T::BN, hk, wt.batch);
      }
      kt = mask.next_key_tile(p, kt);
      ++it;
    };
    // The first stages' K/V go out while the consumers still finish the previous work tile (they
    // only depend on the ring), then Q once its space is free, then the rest.
    const int early = min(n, T::STAGES);
    for (int i = 0; i < early; ++i) load_kv();
    // Q's space is free once every consumer stored the previous tile's O from it.
    mbarrier_wait(sm.bar(sy.q_empty), (item & 1) ^ 1);
    sy.work = make_int4(wt.q_tile, wt.head, wt.batch, n);
    if (n > 0) {
      mbarrier_arrive_expect_tx(sm.bar(sy.q_full), T::QTile::kBytes);
      sm.q.tma_load(maps.q, sm.bar(sy.q_full), 0, wt.q_tile * T::BM, wt.head, wt.batch);
    } else {
      mbarrier_arrive(sm.bar(sy.q_full));  // nothing to load: O = 0, LSE = -inf
    }
    for (int i = early; i < n; ++i) load_kv();
  }
  // No more work: once the last O left Q's space, tell the consumers to stop.
  mbarrier_wait(sm.bar(sy.q_empty), (item & 1) ^ 1);
  sy.work = make_int4(0, 0, 0, -1);
  mbarrier_arrive(sm.bar(sy.q_full));
}

// ---------------------------------------------------------------------------------------------
// A consumer warpgroup (wg = 0 .. C-1 among the consumers).
template <class T, int KIND>
__device__ __forceinline__ void hopper_consumer(const AttnParams& p, const HopperMaps& maps, const HopperSmem<T>& sm,
                                                int wg) {
  using Policy = typename T::Policy;
  constexpr int NB = T::BN / 8;  // n8 blocks of S
  constexpr int NP = T::kPvSteps;
  HopperSync<T::STAGES>& sy = *sm.sync;
  const int tid = threadIdx.x - 128 * (wg + 1);
  const int warp = tid >> 5, lane = tid & 31;
  const int r_lo = 16 * warp + (lane >> 2);  // this thread's first row in the slab (and r_lo + 8)
  const int next_wg = wg + 1 == T::kConsumers ? 0 : wg + 1;
  // GEMM turns: warpgroup wg waits on barrier kSchedBarrier + wg, which the previous warpgroup
  // arrives at after issuing its GEMMs; the last one lets the first go first.
  if (wg == T::kConsumers - 1) named_barrier_arrive(T::kSchedBarrier, 256);
  const auto turn_begin = [&] { named_barrier_sync(T::kSchedBarrier + wg, 256); };
  const auto turn_end = [&] { named_barrier_arrive(T::kSchedBarrier + next_wg, 256); };
  // One arrival per warp releases a stage (each warp's wgmma reads completed at its own wait).
  const auto release = [&](const uint64_t& b) {
    if (lane == 0) mbarrier_arrive(sm.bar(b));
  };

  // O / l (times the V descale) to bf16 through shared memory and a TMA store; the LSE.
  const auto epilogue = [&](int row0, int h, int b, const OAccumulator<1, T::D>& acc) {
    float out_scale = 1.f;
    if constexpr (Policy::kFp8) out_scale = reinterpret_cast<const float*>(p.descale_v)[b * p.kv_heads + h / (p.heads / p.kv_heads)];
    const int64_t lse_row = (static_cast<int64_t>(b) * p.heads + h) * p.seq_q;
    float inv[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float l = quad_sum(acc.row[0][hh].l);
      inv[hh] = l > 0.f ? out_scale / l : 0.f;
      const int row = row0 + r_lo + 8 * hh;
      if ((lane & 3) == 0 && row < p.seq_q)
        reinterpret_cast<float*>(p.lse)[lse_row + row] = natural_lse(acc.row[0][hh].m, l);
    }
    // stmatrix.x4 of 16 columns: matrices (rows 0-7, cols +0..7), (rows 8-15, +0..7),
    // (rows 0-7, +8..15), (rows 8-15, +8..15) of the warp's 16 rows; lane 8m + r addresses row
    // r of matrix m.
    const int m = lane >> 3, st_row = 64 * wg + 16 * warp + (lane & 7) + 8 * (m & 1);
#pragma unroll
    for (int np = 0; np < T::D / 16; ++np) {
      const float(&o0)[4] = acc.o[0][2 * np];
      const float(&o1)[4] = acc.o[0][2 * np + 1];
      stmatrix_x4(sm.o.chunk128(st_row, 2 * np + (m >> 1)), pack_bf16x2(o0[0] * inv[0], o0[1] * inv[0]),
                  pack_bf16x2(o0[2] * inv[1], o0[3] * inv[1]), pack_bf16x2(o1[0] * inv[0], o1[1] * inv[0]),
                  pack_bf16x2(o1[2] * inv[1], o1[3] * inv[1]));
    }
    fence_proxy_async_shared();
    named_barrier_sync(T::kEpiBarrier + wg, 128);
    if (tid == 0) {
      if (row0 < p.seq_q) {
#pragma unroll
        for (int blk = 0; blk < T::OTile::kBlocks; ++blk)
          tma_store_4d(maps.o, sm.o.block(blk) + 64 * wg * 128, 64 * blk, row0, h, b);
        bulk_commit_group();
        bulk_wait_group_read<0>();  // the store has read its rows: Q's space may be refilled
      }
      mbarrier_arrive(sm.bar(sy.q_empty));
    }
  };

  int it = 0;
  for (int item = 0;; ++item) {
    mbarrier_wait(sm.bar(sy.q_full), item & 1);
    const int4 work = sy.work;
    const int n = work.w;
    if (n < 0) break;
    const int q_tile = work.x, h = work.y, b = work.z;
    const int row0 = q_tile * T::BM + 64 * wg;  // the slab's first query row
    const int hk = h / (p.heads / p.kv_heads);

    float scale_log2 = p.scale_log2;
    if constexpr (Policy::kFp8) {
      // S = (Q8 K8^T) dq dk (and O = (P V8) dv in the epilogue): this (batch, KV head)'s descales.
      const int i = b * p.kv_heads + hk;
      scale_log2 *= reinterpret_cast<const float*>(p.descale_q)[i] * reinterpret_cast<const float*>(p.descale_k)[i];
    }

    OAccumulator<1, T::D> acc;
    acc.zero();
    if (n > 0) {
      SlabMask<KIND, T::BN> slab;
      slab.init(p, row0, r_lo);
      float s[NB][4];
      uint32_t pf[NP][4];
      float alpha[2];
      const auto qk = [&](int st) {
        const typename T::KTile kt_tile = sm.k(st);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < T::kQkSteps; ++ks) {
          if (ks == 0)
            Policy::template qk<0>(s, sm.q.desc_k_major(64 * wg, ks), kt_tile.desc_k_major(0, ks));
          else
            Policy::template qk<1>(s, sm.q.desc_k_major(64 * wg, ks), kt_tile.desc_k_major(0, ks));
        }
        wgmma_commit_group();
      };
      const auto pv = [&](int st) {
        const typename T::VTile v_tile = sm.v(st);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < NP; ++ks) Policy::pv(acc.o[0], pf[ks], Policy::v_desc(v_tile, ks));
        wgmma_commit_group();
      };
      // Mask (partial tiles only) and online softmax of S; P stays in s until to_a.
      const auto softmax = [&](int kt) {
        if (!slab.visit(p, kt)) slab.mask(s, p, kt);
        online_softmax_update(s, acc.row[0], scale_log2, alpha);
      };
      const auto stage = [&](int i) { return (it + i) % T::STAGES; };
      const auto parity = [&](int i) { return static_cast<uint32_t>(((it + i) / T::STAGES) & 1); };

      // Tile 0: S_0 only.
      mbarrier_wait(sm.bar(sy.k_full[stage(0)]), parity(0));
      int kt = sy.stage_kt[stage(0)];
      turn_begin();
      qk(stage(0));
      turn_end();
      wgmma_wait_group<0>();
      wgmma_fence_operand(s);
      release(sy.k_empty[stage(0)]);
      softmax(kt);  // O is still 0: alpha needs no rescale
      Policy::to_a(pf, s);
      // Tiles 1..n-1: S_i = Q K_i^T, then O += P_{i-1} V_{i-1} while the softmax of S_i runs.
      for (int i = 1; i < n; ++i) {
        mbarrier_wait(sm.bar(sy.k_full[stage(i)]), parity(i));
        kt = sy.stage_kt[stage(i)];
        turn_begin();
        qk(stage(i));
        mbarrier_wait(sm.bar(sy.v_full[stage(i - 1)]), parity(i - 1));
        pv(stage(i - 1));
        turn_end();
        wgmma_wait_group<1>();  // S_i done, PV_{i-1} may still run
        wgmma_fence_operand(s);
        release(sy.k_empty[stage(i)]);
        softmax(kt);
        wgmma_wait_group<0>();  // PV_{i-1} done: O and P may be touched
        wgmma_fence_operand(acc.o[0]);
        wgmma_fence_operand(pf);
        release(sy.v_empty[stage(i - 1)]);
        rescale_o(acc.o[0], alpha);
        Policy::to_a(pf, s);
      }
      // The last PV.
      mbarrier_wait(sm.bar(sy.v_full[stage(n - 1)]), parity(n - 1));
      pv(stage(n - 1));
      wgmma_wait_group<0>();
      wgmma_fence_operand(acc.o[0]);
      wgmma_fence_operand(pf);
      release(sy.v_empty[stage(n - 1)]);
      it += n;
    }

    // Epilogue. Every warp of the warpgroup is past its last wgmma before any O overwrites Q.
    // The work tile is read again from shared memory (unchanged until this warpgroup releases Q)
    // rather than kept in registers through the mainloop.
    named_barrier_sync(T::kEpiBarrier + wg, 128);
    const int4 done = sy.work;
    epilogue(done.x * T::BM + 64 * wg, done.y, done.z, acc);
  }
  // Balance the turns: the last warpgroup's final arrival at the first one's barrier.
  if (wg == 0) named_barrier_sync(T::kSchedBarrier, 256);
  if (tid == 0) bulk_wait_group<0>();  // every O store complete before the CTA ends
}

// ---------------------------------------------------------------------------------------------
// The kernel body.
template <class T, int KIND>
__device__ __forceinline__ void hopper_prefill(const AttnParams& p, const CUtensorMap& tm_q, const CUtensorMap& tm_k,
                                               const CUtensorMap& tm_v, const CUtensorMap& tm_o) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // The swizzle is a function of absolute shared addresses: align the base to 1024 bytes.
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  unsigned char* smem = smem_raw + (base - raw);
  HopperSmem<T> sm{typename T::QTile{base + T::kQOffset}, typename T::OTile{base + T::kOOffset},
                   base + T::kKOffset, base + T::kVOffset,
                   reinterpret_cast<HopperSync<T::STAGES>*>(smem + T::kSyncOffset)};
  const HopperMaps maps{&tm_q, &tm_k, &tm_v, &tm_o};
  HopperSync<T::STAGES>& sy = *sm.sync;
  if (threadIdx.x == 0) {
    mbarrier_init(sm.bar(sy.q_full), 1);
    mbarrier_init(sm.bar(sy.q_empty), T::kConsumers);
#pragma unroll
    for (int s = 0; s < T::STAGES; ++s) {
      mbarrier_init(sm.bar(sy.k_full[s]), 1);
      mbarrier_init(sm.bar(sy.v_full[s]), 1);
      mbarrier_init(sm.bar(sy.k_empty[s]), 4 * T::kConsumers);
      mbarrier_init(sm.bar(sy.v_empty[s]), 4 * T::kConsumers);
    }
    fence_mbarrier_init();
  }
  __syncthreads();
  const int wg = threadIdx.x / 128;
  if (wg == 0) {
    setmaxnreg_dec<T::kProducerRegs>();
    if (threadIdx.x < 32 && elect_one_sync()) hopper_producer<T, KIND>(p, maps, sm);
  } else {
    setmaxnreg_inc<T::kConsumerRegs>();
    hopper_consumer<T, KIND>(p, maps, sm, wg - 1);
  }
}

}  // namespace attn

// An extern "C" entry NAME running the Hopper prefill for TRAITS and mask KIND. Parameters: the
// shared AttnParams, then the tensor maps of Q, K, V (V^T for e4m3) and O, each a
// const __grid_constant__ CUtensorMap (128 bytes in the parameter space; the TMA reads it there).
#define ATTN_HOPPER_ENTRY(NAME, TRAITS, KIND)                                                                 \
  extern "C" __global__ void __launch_bounds__(TRAITS::kThreads, 1)                                         \
      NAME(const AttnParams p, const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k, \
           const __grid_constant__ CUtensorMap tm_v, const __grid_constant__ CUtensorMap tm_o) {            \
    attn::hopper_prefill<TRAITS, KIND>(p, tm_q, tm_k, tm_v, tm_o);                                          \
  }

// Hopper's plain bulk copies and the mbarrier ring they fill: the asynchronous K/V load path of
// the serving-decode kernel (decode_paged.cuh), usable by any kernel whose tiles are filled by
// the copy engines (bulk or TMA tensor copies) and drained by consumer warps.
//
// Bulk copy vs TMA tensor copy: `cp.async.bulk` moves one contiguous run of bytes (16-byte
// aligned, a multiple of 16) without a tensor map, and any run length per copy; a tensor copy
// moves a box whose shape is fixed when the map is encoded on the host. A paged cache's pages
// are contiguous per KV head (attn_paged.h) but each sequence's last page is filled only up to
// its length and a window starts anywhere: bulk copies fetch exactly the rows that exist, where
// a fixed box would also read page tails (and each buffer set would need maps of its own).
// What bulk copies do not do is swizzle: the bytes land in shared memory as they are in global
// memory, so a kernel that feeds ldmatrix restages them (decode_paged.cuh does, converting fp8
// on the way).
#pragma once
#include <stdint.h>
#include "attn_mbarrier.cuh"

namespace attn {

// (UBLKCP) `bytes` of global memory at `src` into shared memory at `dst`, completing `bytes`
// transactions on the mbarrier `bar`. src, dst and bytes multiples of 16.
__device__ __forceinline__ void bulk_copy_g2s(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(__cvta_generic_to_global(src)), "r"(bytes), "r"(bar)
               : "memory");
}

// (LDGSTS) 4 bytes with cp.async, of which the first `src_bytes` (0..4) are read and the rest
// zero-filled: small runs a bulk copy cannot take (not a multiple of 16 bytes).
__device__ __forceinline__ void cp_async_ca_4(uint32_t dst, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(__cvta_generic_to_global(src)),
               "r"(src_bytes)
               : "memory");
}

// (ARRIVES.LDGSTSBAR) An arrival on `bar` once this thread's earlier cp.async copies have landed;
// .noinc: the arrival is one of the barrier's expected count (the init must count it).
__device__ __forceinline__ void cp_async_mbarrier_arrive_noinc(uint32_t bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// A ring of STAGES stages filled asynchronously by a producer and drained by consumers, with two
// mbarriers per stage at shared address `bars` (16 * STAGES bytes, 8-byte aligned): full[i]
// completes when stage i's copies landed (the producer's arrive.expect_tx with the bytes its
// bulk or TMA copies deliver, plus any cp.async.mbarrier arrivals it counted at init), empty[i]
// when its consumers released it. Tile n (the n-th the ring carries) uses stage n % STAGES for
// the (n / STAGES)-th time: its full phase has parity (n / STAGES) & 1, and the producer may
// refill the stage once the empty phase of the previous use completed (for the first use, the
// "phase before the first" of a fresh barrier: parity 1 passes at once). The stages' memory is
// the user's; the ring only orders it.
template <int STAGES>
struct MbarrierRing {
  static_assert(STAGES >= 2, "at least double buffering");
  static constexpr int kBytes = 16 * STAGES;
  uint32_t bars;

  __device__ __forceinline__ static int stage(int n) { return n % STAGES; }
  __device__ __forceinline__ static uint32_t parity(int n) { return static_cast<uint32_t>(n / STAGES) & 1u; }
  __device__ __forceinline__ uint32_t full(int n) const { return bars + 8 * stage(n); }
  __device__ __forceinline__ uint32_t empty(int n) const { return bars + 8 * (STAGES + stage(n)); }

  // One thread, before any use; the caller then synchronizes the CTA.
  __device__ __forceinline__ void init(uint32_t full_arrivals, uint32_t empty_arrivals) const {
#pragma unroll
    for (int i = 0; i < STAGES; ++i) {
      mbarrier_init(bars + 8 * i, full_arrivals);
      mbarrier_init(bars + 8 * (STAGES + i), empty_arrivals);
    }
    fence_mbarrier_init();
  }
  // Producer: stage of tile n is free (its previous tile was released).
  __device__ __forceinline__ void producer_acquire(int n) const { mbarrier_wait(empty(n), parity(n) ^ 1u); }
  // Consumer: tile n has landed.
  __device__ __forceinline__ void consumer_wait(int n) const { mbarrier_wait(full(n), parity(n)); }
  // Consumer: done reading tile n's stage (one of the empty barrier's expected arrivals).
  __device__ __forceinline__ void consumer_release(int n) const { mbarrier_arrive(empty(n)); }
};

}  // namespace attn

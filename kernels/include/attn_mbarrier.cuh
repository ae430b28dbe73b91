// mbarrier and named-barrier wrappers (sm_90), one per PTX instruction and named after it (SASS
// in parentheses). The names and signatures are those of the Hopper prefill's attn_sm90.cuh, so
// that one header can carry them for both kernels (docs/KERNELS.md).
//
// An mbarrier is an 8-byte shared-memory object with a phase, pending arrivals and a transaction
// count (PTX ISA 9.7.13.15). A phase completes when every expected arrival came and the
// transaction count is back to zero; try_wait.parity P succeeds once the phase of parity P
// completed (a fresh barrier counts as having completed the phase before its first, so waiting
// for parity 1 passes at once: producers start their "empty" waits there).
#pragma once
#include <stdint.h>

namespace attn {

// (SYNCS.EXCH) `count` arrivals complete a phase.
__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Makes the inits visible to the async proxy (the copy engines signal these barriers) before use.
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// (SYNCS.ARRIVE) One arrival, release semantics: this thread's earlier writes are visible to a
// thread whose wait observes the phase this arrival completes.
__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Raises the transaction count by `bytes` (what the copies that complete on this barrier will
// deliver), then arrives.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

// One bounded wait (the hardware may suspend the thread for a while); true once the phase of
// this parity completed. Acquire semantics: what the completing arrivals and copies wrote is
// visible after it returns true.
__device__ __forceinline__ bool mbarrier_try_wait_parity(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

// The loop lives in C++ (no labels inside inline asm, which would be duplicated per inlining).
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  while (!mbarrier_try_wait_parity(bar, parity)) {
  }
}

// bar.sync with an explicit thread count (BAR.SYNC): id 0 is __syncthreads; kernels use 1.. for
// their own groups of warps (a multiple of 32 threads, the same count for every participant).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace attn

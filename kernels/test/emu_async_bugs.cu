// Planted bugs in asynchronous code for the emulator's sanitizer (tests/emu_async_bugs.rs). Each
// kernel takes `bug`: nonzero plants the bug on the line marked "BUG:", zero runs its correct
// twin, which must be clean. The instruction at fault is written at the marked line (not in an
// inlined helper) so that the finding's PTX line maps back to it.
#include <cuda.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t ok;
  asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
               : "=r"(ok)
               : "r"(bar), "r"(parity)
               : "memory");
  return ok != 0;
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  while (!mbar_try_wait(bar, parity)) {
  }
}
__device__ __forceinline__ void tma_load_2d(const CUtensorMap* map, int c0, int c1, uint32_t dst, uint32_t bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
               "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(bar)
               : "memory");
}

extern __shared__ __align__(1024) uint8_t dyn_smem[];

// A 32x32 f32 tile by TMA; every thread reads one element. Bug: the read comes before the wait.
extern "C" __global__ void bug_tma_early_read(const __grid_constant__ CUtensorMap map, float* out, int bug) {
  __shared__ __align__(8) uint64_t bar;
  const float* tile = (const float*)dyn_smem;
  const uint32_t b = smem_addr(&bar);
  const int t = threadIdx.x;
  if (t == 0) mbar_init(b, 1);
  __syncthreads();
  if (t == 0) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(4096) : "memory");
    tma_load_2d(&map, 0, 0, smem_addr(dyn_smem), b);
  }
  float v = 0.f;
  if (bug) v = tile[t * 8];  // BUG: read before the mbarrier phase that completes the TMA was observed
  mbar_wait(b, 0);
  if (!bug) v = tile[t * 8];
  out[t] = v;
}

// Bug: the TMA destination is 16 bytes past a 128-byte boundary.
extern "C" __global__ void bug_tma_misaligned(const __grid_constant__ CUtensorMap map, float* out, int bug) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  const int t = threadIdx.x;
  const uint32_t off = bug ? 16 : 0;
  if (t == 0) mbar_init(b, 1);
  __syncthreads();
  if (t == 0) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(4096) : "memory");
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(smem_addr(dyn_smem) + off), "l"((uint64_t)&map), "r"(0), "r"(0), "r"(b) : "memory");  // BUG: misaligned TMA destination
  }
  mbar_wait(b, 0);
  out[t] = ((const float*)(dyn_smem + off))[t * 8];
}

// Bug: the box (4096 bytes) is placed where it overruns the block's dynamic shared memory.
extern "C" __global__ void bug_tma_smem_overflow(const __grid_constant__ CUtensorMap map, float* out, int bug) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  const int t = threadIdx.x;
  const uint32_t off = bug ? 2048 : 0;
  if (t == 0) mbar_init(b, 1);
  __syncthreads();
  if (t == 0) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(4096) : "memory");
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(smem_addr(dyn_smem) + off), "l"((uint64_t)&map), "r"(0), "r"(0), "r"(b) : "memory");  // BUG: box overruns shared memory
  }
  mbar_wait(b, 0);
  if (!bug) out[t] = ((const float*)dyn_smem)[t * 8];
}

// Bug: the mbarrier is initialized again while live (no mbarrier.inval first).
extern "C" __global__ void bug_mbar_reinit(int* out, int bug) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    if (!bug) asm volatile("mbarrier.inval.shared::cta.b64 [%0];" ::"r"(b) : "memory");
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(b), "r"(32) : "memory");  // BUG: re-init of a live mbarrier
  }
  __syncthreads();
  if (threadIdx.x < 32) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(b) : "memory");
  if (threadIdx.x < 32) mbar_wait(b, 0);
  out[threadIdx.x] = 1;
}

// Bug: a plain store overwrites a live mbarrier (the twin invalidates it first).
extern "C" __global__ void bug_mbar_plain_store(int* out, int bug) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(b) : "memory");
    if (!bug) asm volatile("mbarrier.inval.shared::cta.b64 [%0];" ::"r"(b) : "memory");
    *(volatile uint64_t*)&bar = 0;  // BUG: plain store to a live mbarrier
  }
  __syncthreads();
  out[threadIdx.x] = (int)*(volatile uint64_t*)&bar;
}

// Bug: two threads arrive (with expect_tx) on a barrier that expects one arrival.
extern "C" __global__ void bug_mbar_underflow(int* out, int bug) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  const int t = threadIdx.x;
  if (t == 0) mbar_init(b, 1);
  __syncthreads();
  if (t == 0 || (bug && t == 1)) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(64) : "memory");  // BUG: arrival underflow
  }
  __syncthreads();
  if (t == 2) asm volatile("mbarrier.complete_tx.shared::cta.b64 [%0], %1;" ::"r"(b), "r"(bug ? 128 : 64) : "memory");
  __syncthreads();
  out[t] = 1;
}

// Bug: expect_tx names half the box's bytes. With `wait`, the consumers wait forever (a deadlock
// report naming the barrier's tx-count); without, the block ends with the phase incomplete.
extern "C" __global__ void bug_tx_mismatch(const __grid_constant__ CUtensorMap map, float* out, int bug, int wait) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  const int t = threadIdx.x;
  if (t == 0) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(b) : "memory");  // BUG: an mbarrier whose transaction bytes never match
  __syncthreads();
  if (t == 0) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(bug ? 2048 : 4096) : "memory");
    tma_load_2d(&map, 0, 0, smem_addr(dyn_smem), b);
  }
  if (wait) {
    mbar_wait(b, 0);
    out[t] = ((const float*)dyn_smem)[t * 8];
  } else {
    out[t] = 0.f;
  }
}

// Bug: warp 1 arrives at named barrier 1 naming 96 threads, warp 0 named 64.
extern "C" __global__ void bug_named_count(int* out, int bug) {
  __shared__ int x[64];
  const int t = threadIdx.x;
  if (t < 64) x[t] = t;
  if (t < 32) asm volatile("bar.sync 1, %0;" ::"r"(64) : "memory");
  if (t >= 32 && t < 64) asm volatile("bar.sync 1, %0;" ::"r"(bug ? 96 : 64) : "memory");  // BUG: thread count differs from warp 0's
  if (t < 64) out[t] = x[63 - t];
}

// Bug: the barrier expects two arrivals, only one thread arrives: every warp waits forever.
extern "C" __global__ void bug_mbar_deadlock(int* out, int bug) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  const int t = threadIdx.x;
  if (t == 0) mbar_init(b, 2);
  __syncthreads();
  if (t == 0 || (!bug && t == 33)) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(b) : "memory");
  mbar_wait(b, 0);  // BUG: waits for an arrival that never comes
  out[t] = 1;
}

// Bug: every warp spins on a shared flag nobody sets (the twin's thread 0 sets it).
extern "C" __global__ void bug_livelock(int* out, int bug) {
  __shared__ volatile int flag;
  const int t = threadIdx.x;
  if (t == 0) flag = 0;
  __syncthreads();
  if (!bug && t == 0) flag = 1;
  while (flag == 0) {  // BUG: spins on a flag nobody sets
  }
  out[t] = flag;
}

// Bug: only warp 0 of the warpgroup executes setmaxnreg (it must be all four).
extern "C" __global__ void __launch_bounds__(128, 1) bug_setmaxnreg_partial(int* out, int bug) {
  const int w = threadIdx.x / 32;
  if (!bug || w == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 64;" ::: "memory");  // BUG: not executed by the whole warpgroup
  }
  out[threadIdx.x] = w;
}

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

// --- Happens-before racecheck and the async proxy's ordering rules (PTX ISA 8: memory
// consistency model; 8.6 proxies; 9.7.9.25.4.3 bulk async-groups).

__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, uint32_t src) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"((uint64_t)map), "r"(0),
               "r"(0), "r"(src)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Every thread writes 8 floats of a 32x32 f32 tile with generic stores; thread 0 stores the tile
// by TMA. The async proxy reads it: the writers need fence.proxy.async before the barrier. Bug:
// no fence.
extern "C" __global__ void bug_store_no_proxy_fence(const __grid_constant__ CUtensorMap map, const float* in, int bug) {
  float* tile = (float*)dyn_smem;
  const int t = threadIdx.x;
  for (int j = 0; j < 8; j++) tile[t * 8 + j] = in[t * 8 + j] * 2.f;
  if (!bug) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  __syncthreads();
  if (t == 0) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"((uint64_t)&map), "r"(0), "r"(0), "r"(smem_addr(tile)) : "memory");  // BUG: generic writes without fence.proxy.async
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
  }
}

// The TMA store's source is reused (the next tile is written in place) after the store. Bug 1:
// thread 0 overwrites it before its cp.async.bulk.wait_group.read; bug 2: thread 32 overwrites it
// after thread 0's wait with no barrier between them (the wait is not ordered before the write).
// out receives the second tile through a plain copy.
extern "C" __global__ void bug_store_source_reused(const __grid_constant__ CUtensorMap map, const float* in, float* out,
                                                   int bug) {
  float* tile = (float*)dyn_smem;
  const int t = threadIdx.x;
  for (int j = 0; j < 8; j++) tile[t * 8 + j] = in[t * 8 + j];
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  __syncthreads();
  if (t == 0) {
    tma_store_2d(&map, smem_addr(tile));
    if (bug == 1) tile[0] = -1.f;  // BUG: overwrites the store's source before its wait_group.read
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
    if (bug != 1) tile[0] = -1.f;
  }
  if (bug != 2) __syncthreads();
  if (t == 32) tile[1] = -2.f;  // BUG: not ordered after thread 0's wait_group.read
  __syncthreads();
  for (int j = 0; j < 8; j++) out[t * 8 + j] = tile[t * 8 + j];
}

// A producer warp fills a buffer with generic stores for a consumer warp, two rounds through one
// stage (full and empty mbarriers, 32 arrivals each). The consumer reads its element, doubles it
// in place and reads it back. Bug: the consumer arrives on `empty` before its in-place write, so
// the producer's refill is not ordered after that write. The old one-epoch-per-barrier rule
// missed this (an mbarrier completion ended the interval).
extern "C" __global__ void bug_early_release(int* out, int bug) {
  __shared__ float buf[32];
  __shared__ __align__(8) uint64_t full, empty;
  const int t = threadIdx.x, lane = t % 32;
  const uint32_t f = smem_addr(&full), e = smem_addr(&empty);
  if (t == 0) {
    mbar_init(f, 32);
    mbar_init(e, 32);
  }
  __syncthreads();
  if (t < 32) {
    for (int it = 0; it < 2; it++) {
      if (it > 0) mbar_wait(e, (it - 1) & 1);
      buf[lane] = (float)(it * 100 + lane);  // BUG: refill races with the consumer's write after its early release
      asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(f) : "memory");
    }
  } else {
    for (int it = 0; it < 2; it++) {
      mbar_wait(f, it & 1);
      float v = buf[lane];
      if (bug) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(e) : "memory");
      buf[lane] = v * 2.f;
      v = buf[lane];
      if (!bug) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(e) : "memory");
      out[it * 32 + lane] = (int)v;
    }
  }
}

// The same handoff with a TMA refill: thread 0 loads a 32x32 f32 tile twice into one stage; the
// consumer warp reads, doubles in place and releases. Bug: the release comes before the write, so
// the second TMA (issued once the producer saw the release) races with it.
extern "C" __global__ void bug_tma_refill_early_release(const __grid_constant__ CUtensorMap map, float* out, int bug) {
  __shared__ __align__(8) uint64_t full, empty;
  float* tile = (float*)dyn_smem;
  const int t = threadIdx.x, lane = t % 32;
  const uint32_t f = smem_addr(&full), e = smem_addr(&empty);
  if (t == 0) {
    mbar_init(f, 1);
    mbar_init(e, 32);
  }
  __syncthreads();
  if (t < 32) {
    if (lane == 0) {
      for (int it = 0; it < 2; it++) {
        if (it > 0) mbar_wait(e, (it - 1) & 1);
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(f), "r"(4096) : "memory");
        asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(smem_addr(tile)), "l"((uint64_t)&map), "r"(0), "r"(0), "r"(f) : "memory");  // BUG: TMA refill races with the consumer's write
      }
    }
  } else {
    for (int it = 0; it < 2; it++) {
      mbar_wait(f, it & 1);
      float v = tile[lane * 32];
      if (bug) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(e) : "memory");
      tile[lane * 32] = v * 2.f;
      v = tile[lane * 32];
      if (!bug) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(e) : "memory");
      out[it * 32 + lane] = v;
    }
  }
}

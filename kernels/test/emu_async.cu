// Hopper asynchronous instructions for the emulator's unit tests (tests/emu_async.rs) and the GPU
// cross-check: mbarrier phases, TMA (cp.async.bulk.tensor) loads and stores 1D-5D, plain bulk
// copies, spin-waits across warps, warp-specialized producer/consumer pipelines, the cluster-of-
// one instructions, elect.sync and setmaxnreg. No labels inside inline asm (each helper is
// inlined many times): loops stay in C++ around one instruction.
#include <cuda.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void fence_mbar_init() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
__device__ __forceinline__ uint64_t mbar_arrive(uint32_t bar) {
  uint64_t s;
  asm volatile("mbarrier.arrive.shared::cta.b64 %0, [%1];" : "=l"(s) : "r"(bar) : "memory");
  return s;
}
__device__ __forceinline__ void mbar_arrive_relaxed(uint32_t bar) {
  asm volatile("mbarrier.arrive.relaxed.cta.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_arrive_remote(uint32_t bar) {
  // Through mapa and .shared::cluster, as CUTLASS's ClusterBarrier::arrive(cta_id) does.
  asm volatile(
      "{ .reg .b32 ra; mapa.shared::cluster.u32 ra, %0, 0; mbarrier.arrive.release.cluster.shared::cluster.b64 _, [ra]; }" ::"r"(bar)
      : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_complete_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ bool mbar_try_wait_parity(uint32_t bar, uint32_t parity) {
  uint32_t ok;
  asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
               : "=r"(ok)
               : "r"(bar), "r"(parity)
               : "memory");
  return ok != 0;
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  while (!mbar_try_wait_parity(bar, parity)) {
  }
}
__device__ __forceinline__ bool mbar_test_wait(uint32_t bar, uint64_t state) {
  uint32_t ok;
  asm volatile("{ .reg .pred p; mbarrier.test_wait.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
               : "=r"(ok)
               : "r"(bar), "l"(state)
               : "memory");
  return ok != 0;
}
__device__ __forceinline__ bool mbar_test_wait_parity(uint32_t bar, uint32_t parity) {
  uint32_t ok;
  asm volatile("{ .reg .pred p; mbarrier.test_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
               : "=r"(ok)
               : "r"(bar), "r"(parity)
               : "memory");
  return ok != 0;
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// One TMA load of a rank-`rank` box at `coords` into shared `dst`, completing on `bar`.
__device__ __forceinline__ void tma_load(const CUtensorMap* map, int rank, const int* c, uint32_t dst, uint32_t bar) {
  const uint64_t m = (uint64_t)map;
  switch (rank) {
    case 1:
      asm volatile("cp.async.bulk.tensor.1d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2}], [%3];" ::"r"(dst),
                   "l"(m), "r"(c[0]), "r"(bar)
                   : "memory");
      break;
    case 2:
      asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
                   "l"(m), "r"(c[0]), "r"(c[1]), "r"(bar)
                   : "memory");
      break;
    case 3:
      asm volatile(
          "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3, %4}], [%5], %6;" ::"r"(dst),
          "l"(m), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(bar), "l"(0x12f0000000000000ull)
          : "memory");
      break;
    case 4:
      asm volatile(
          "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3, %4, %5}], [%6], %7;" ::"r"(dst),
          "l"(m), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(bar), "h"((uint16_t)1)
          : "memory");
      break;
    default:
      asm volatile(
          "cp.async.bulk.tensor.5d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5, %6}], [%7];" ::"r"(dst),
          "l"(m), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(c[4]), "r"(bar)
          : "memory");
  }
}

// One TMA store of the box at shared `src` to `coords`.
__device__ __forceinline__ void tma_store(const CUtensorMap* map, int rank, const int* c, uint32_t src) {
  const uint64_t m = (uint64_t)map;
  switch (rank) {
    case 1:
      asm volatile("cp.async.bulk.tensor.1d.global.shared::cta.bulk_group [%0, {%1}], [%2];" ::"l"(m), "r"(c[0]), "r"(src) : "memory");
      break;
    case 2:
      asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group [%0, {%1, %2}], [%3];" ::"l"(m), "r"(c[0]), "r"(c[1]),
                   "r"(src)
                   : "memory");
      break;
    case 3:
      asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group.L2::cache_hint [%0, {%1, %2, %3}], [%4], %5;" ::"l"(m),
                   "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(src), "l"(0x12f0000000000000ull)
                   : "memory");
      break;
    case 4:
      asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];" ::"l"(m), "r"(c[0]), "r"(c[1]),
                   "r"(c[2]), "r"(c[3]), "r"(src)
                   : "memory");
      break;
    default:
      asm volatile("cp.async.bulk.tensor.5d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4, %5}], [%6];" ::"l"(m), "r"(c[0]),
                   "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(c[4]), "r"(src)
                   : "memory");
  }
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

extern __shared__ __align__(1024) uint8_t dyn_smem[];

// The first 1024-byte boundary in dynamic shared memory (the launch adds 1024 bytes for it: the
// alignment of dynamic shared memory is not guaranteed to be the declared one).
__device__ __forceinline__ uint8_t* dyn_aligned() {
  const uint32_t raw = smem_addr(dyn_smem);
  return dyn_smem + (((raw + 1023u) & ~1023u) - raw);
}

// TMA load of one box (rank 1..5) into dynamic shared memory at byte `dst_off` past its first
// 1024-byte boundary, then every thread
// copies the box's `bytes` shared bytes (swizzled as they landed) to `out`; info[0] = the shared
// address of the box, info[1] = the mbarrier phase parity after the wait.
extern "C" __global__ void tma_load_box(const __grid_constant__ CUtensorMap map, int rank, const int* coords, uint32_t dst_off,
                                        uint32_t bytes, uint8_t* out, uint32_t* info) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  uint8_t* box = dyn_aligned() + dst_off;
  const uint32_t dst = smem_addr(box);
  if (threadIdx.x == 0) {
    asm volatile("prefetch.tensormap [%0];" ::"l"((uint64_t)&map) : "memory");
    mbar_init(b, 1);
    fence_mbar_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int c[5];
    for (int d = 0; d < 5; ++d) c[d] = d < rank ? coords[d] : 0;
    mbar_arrive_expect_tx(b, bytes);
    tma_load(&map, rank, c, dst, b);
  }
  mbar_wait(b, 0);
  for (uint32_t i = threadIdx.x; i < bytes; i += blockDim.x) out[i] = box[i];
  if (threadIdx.x == 0) {
    info[0] = dst;
    info[1] = mbar_test_wait_parity(b, 0) ? 1 : 0;
  }
}

// TMA store: the threads write `bytes` bytes of `in` to dynamic shared memory at `src_off` past
// its first 1024-byte boundary (generic stores), fence the async proxy, synchronize; thread 0 stores the box at `coords` and
// waits for its reads; info[0] = the shared address.
extern "C" __global__ void tma_store_box(const __grid_constant__ CUtensorMap map, int rank, const int* coords, uint32_t src_off,
                                         uint32_t bytes, const uint8_t* in, uint32_t* info) {
  uint8_t* box = dyn_aligned() + src_off;
  for (uint32_t i = threadIdx.x; i < bytes; i += blockDim.x) box[i] = in[i];
  fence_proxy_async();
  __syncthreads();
  if (threadIdx.x == 0) {
    int c[5];
    for (int d = 0; d < 5; ++d) c[d] = d < rank ? coords[d] : 0;
    tma_store(&map, rank, c, smem_addr(box));
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
    info[0] = smem_addr(box);
  }
}

// Plain bulk copies: `n` bytes global -> shared (mbarrier), then shared -> global (bulk group) at
// an offset, read back by every thread too.
extern "C" __global__ void bulk_copy(const uint8_t* in, uint8_t* out, uint8_t* out2, uint32_t n) {
  __shared__ __align__(8) uint64_t bar;
  const uint32_t b = smem_addr(&bar);
  if (threadIdx.x == 0) {
    mbar_init(b, 1);
    fence_mbar_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    mbar_arrive_expect_tx(b, n);
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(smem_addr(dyn_smem)),
                 "l"(in), "r"(n), "r"(b)
                 : "memory");
  }
  mbar_wait(b, 0);
  for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) out2[i] = dyn_smem[i] ^ 0x5a;
  __syncthreads();
  if (threadIdx.x == 0) {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(out), "r"(smem_addr(dyn_smem)), "r"(n) : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
  }
}

// mbarrier phases with 128 threads (4 warps):
// - `rounds` phases of an all-thread barrier: before arriving, thread (r * 37) % 128 writes
//   token[r]; after the phase completes every thread reads it (release/acquire through the
//   phase), alternating test_wait(state) polls and try_wait.parity waits;
// - a transaction phase: expect_tx by one thread, complete_tx by two others, then the arrivals
//   (through mapa and .shared::cluster);
// - arrive_drop: warp 3 drops out of a 128-count barrier; the rest go through three phases;
// - noComplete arrival and pending_count; inval and re-init with another count.
// out[r * 128 + t] = token read; extra[t] = the per-thread results of the later sections.
extern "C" __global__ void mbar_phases(const uint32_t* tokens, uint32_t* out, uint32_t* extra, int rounds) {
  __shared__ __align__(8) uint64_t bars[4];
  __shared__ uint32_t shared_token;
  const uint32_t t = threadIdx.x;
  const uint32_t a = smem_addr(&bars[0]), tx = smem_addr(&bars[1]), dr = smem_addr(&bars[2]), nc = smem_addr(&bars[3]);
  if (t == 0) {
    mbar_init(a, blockDim.x);
    mbar_init(tx, 2);
    mbar_init(dr, blockDim.x);
    mbar_init(nc, 3);
    fence_mbar_init();
  }
  __syncthreads();
  for (int r = 0; r < rounds; ++r) {
    if (t == (uint32_t)(r * 37) % blockDim.x) shared_token = tokens[r];
    const uint64_t s = mbar_arrive(a);
    if (r % 2 == 0) {
      while (!mbar_test_wait(a, s)) {
      }
    } else {
      mbar_wait(a, 0);  // the round's first phase is phase 2r: parity 0
    }
    out[r * blockDim.x + t] = shared_token;
    // Nobody may overwrite the token before every thread read it.
    const uint64_t s2 = mbar_arrive(a);
    while (!mbar_test_wait(a, s2)) {
    }
  }
  // Transactions: 2 arrivals and 96 bytes of tx.
  if (t == 5) mbar_expect_tx(tx, 96);
  __syncthreads();
  if (t == 70) mbar_complete_tx(tx, 32);
  if (t == 71) mbar_complete_tx(tx, 64);
  if (t == 0 || t == 127) mbar_arrive_remote(tx);
  mbar_wait(tx, 0);
  uint32_t e = mbar_test_wait_parity(tx, 0) ? 1 : 0;
  // arrive_drop: warp 3 leaves the barrier; the other warps go through three phases of 96.
  if (t >= 96) {
    asm volatile("mbarrier.arrive_drop.shared::cta.b64 _, [%0];" ::"r"(dr) : "memory");
    e |= 2;
  } else {
    for (int k = 0; k < 3; ++k) {
      mbar_arrive_relaxed(dr);
      mbar_wait(dr, k & 1);
    }
    e |= mbar_test_wait_parity(dr, 0) ? 4 : 0;  // phase 3 current: parity 0 is the completed phase 2
  }
  // noComplete + pending_count: threads 0 and 1 arrive without completing (count 3).
  uint32_t pc = 0;
  if (t < 2) {
    uint64_t st;
    asm volatile("mbarrier.arrive.noComplete.shared::cta.b64 %0, [%1], 1;" : "=l"(st) : "r"(nc) : "memory");
    asm volatile("mbarrier.pending_count.b64 %0, %1;" : "=r"(pc) : "l"(st));
  }
  __syncthreads();
  if (t == 2) mbar_arrive(nc);
  mbar_wait(nc, 0);
  __syncthreads();
  // Reuse: invalidate, re-initialize with count 32, one phase by warp 0.
  if (t == 0) {
    asm volatile("mbarrier.inval.shared::cta.b64 [%0];" ::"r"(nc) : "memory");
    mbar_init(nc, 32);
  }
  __syncthreads();
  if (t < 32) {
    mbar_arrive(nc);
    mbar_wait(nc, 0);
  }
  extra[t] = e | (pc << 8);
}

// cp.async completion tracked by an mbarrier: each thread copies 16 bytes, then
// cp.async.mbarrier.arrive (`noinc` in odd blocks: the count includes the copies' arrivals).
extern "C" __global__ void cp_async_mbar(const uint4* in, uint4* out) {
  __shared__ __align__(16) uint4 buf[128];
  __shared__ __align__(8) uint64_t bar;
  const uint32_t t = threadIdx.x, b = smem_addr(&bar);
  const bool noinc = blockIdx.x & 1;
  if (t == 0) {
    mbar_init(b, noinc ? 2 * blockDim.x : blockDim.x);
    fence_mbar_init();
  }
  __syncthreads();
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(&buf[t])), "l"(in + blockIdx.x * 128 + t) : "memory");
  if (noinc)
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(b) : "memory");
  else
    asm volatile("cp.async.mbarrier.arrive.shared.b64 [%0];" ::"r"(b) : "memory");
  mbar_arrive(b);
  mbar_wait(b, 0);
  out[blockIdx.x * 128 + t] = buf[(t + 32) % 128];
}

// Spin-waits across warps: warp 0 spins on a volatile global flag that warp 1 sets after writing
// data, then on a shared flag (atomic polls with nanosleep) that warp 2 sets; a shared-memory
// ticket makes the warps take turns.
extern "C" __global__ void spin_wait(volatile int* flag, int* data, int* out) {
  __shared__ int sflag;
  __shared__ int ticket;
  const int t = threadIdx.x, blk = blockIdx.x;
  if (t == 0) {
    sflag = 0;
    ticket = 0;
  }
  __syncthreads();
  if (t == 32) {
    data[blk] = 1000 + blk;
    __threadfence();
    flag[blk] = 1;
  }
  if (t == 0) {
    while (flag[blk] == 0) {
    }
    __threadfence();
    out[blk * 8] = data[blk];
    while (atomicAdd(&sflag, 0) == 0) __nanosleep(32);
    out[blk * 8 + 1] = atomicAdd(&sflag, 0);
  }
  if (t == 64) atomicExch(&sflag, 7 + blk);
  // Turns: warp w waits until the ticket reaches w, then passes it on.
  if (t % 32 == 0) {
    const int w = t / 32;
    while (atomicAdd(&ticket, 0) != w) {
    }
    out[blk * 8 + 2 + w] = atomicAdd(&ticket, 1);
  }
}

// A warp-specialized pipeline (FA3's shape): warp 0 produces `tiles` tiles of 32x32 f32 by TMA
// into `stages` shared buffers (full barrier: 1 arrival + the TMA's bytes; empty barrier: one
// arrival per consumer warp); warps 1..4 consume (each reads its 8 rows of a tile and accumulates
// row sums); named barrier 1 (128 threads) orders the consumers' final write. out[row] = sum over
// tiles of the row's elements.
extern "C" __global__ void tma_pipeline(const __grid_constant__ CUtensorMap map, int tiles, float* out) {
  constexpr int STAGES = 3;
  __shared__ __align__(8) uint64_t full[STAGES], empty[STAGES];
  __shared__ float rowsum[32];
  float* buf = (float*)dyn_aligned();  // STAGES * 32 * 32 floats
  const int t = threadIdx.x, warp = t / 32, lane = t % 32;
  if (t == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(smem_addr(&full[s]), 1);
      mbar_init(smem_addr(&empty[s]), 4);
    }
    fence_mbar_init();
  }
  __syncthreads();
  if (warp == 0) {
    uint32_t elected = 0;
    asm volatile("{ .reg .pred p; .reg .b32 l; elect.sync l|p, 0xffffffff; selp.u32 %0, 1, 0, p; }" : "=r"(elected));
    if (elected) {
      for (int k = 0; k < tiles; ++k) {
        const int s = k % STAGES;
        // Producers start at phase parity 1: a fresh barrier passes it.
        mbar_wait(smem_addr(&empty[s]), ((k / STAGES) & 1) ^ 1);
        mbar_arrive_expect_tx(smem_addr(&full[s]), 32 * 32 * 4);
        const int c[5] = {0, 32 * k, 0, 0, 0};
        tma_load(&map, 2, c, smem_addr(buf + s * 1024), smem_addr(&full[s]));
      }
    }
    return;
  }
  const int row = (warp - 1) * 8 + lane / 4;
  float acc = 0.f;
  for (int k = 0; k < tiles; ++k) {
    const int s = k % STAGES;
    mbar_wait(smem_addr(&full[s]), (k / STAGES) & 1);
    for (int j = lane % 4; j < 32; j += 4) acc += buf[s * 1024 + row * 32 + j];
    __syncwarp();
    if (lane == 0) mbar_arrive(smem_addr(&empty[s]));
  }
  acc += __shfl_xor_sync(0xffffffffu, acc, 1);
  acc += __shfl_xor_sync(0xffffffffu, acc, 2);
  if (lane % 4 == 0) rowsum[row] = acc;
  asm volatile("bar.sync 1, 128;" ::: "memory");
  if (t >= 32 && t < 64) out[blockIdx.x * 32 + (t - 32)] = rowsum[t - 32];
}

// Cluster-of-one instructions and elect.sync: out[0..7] = %cluster_ctarank, %cluster_nctarank,
// %is_explicit_cluster, %clusterid.x, %nclusterid.x, %cluster_ctaid.x, %cluster_nctaid.x, the
// mapa of a shared address minus the address; out[8 + t] = elect.sync's leader lane and
// predicate under a lane mask (odd lanes of each warp).
extern "C" __global__ void cluster_one(uint32_t* out) {
  __shared__ uint32_t x;
  const uint32_t t = threadIdx.x;
  uint32_t v[8];
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(v[0]));
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(v[1]));
  asm volatile("{ .reg .pred p; mov.pred p, %%is_explicit_cluster; selp.u32 %0, 1, 0, p; }" : "=r"(v[2]));
  asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(v[3]));
  asm volatile("mov.u32 %0, %%nclusterid.x;" : "=r"(v[4]));
  asm volatile("mov.u32 %0, %%cluster_ctaid.x;" : "=r"(v[5]));
  asm volatile("mov.u32 %0, %%cluster_nctaid.x;" : "=r"(v[6]));
  uint32_t rem;
  asm volatile("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(rem) : "r"(smem_addr(&x)));
  v[7] = rem - smem_addr(&x);
  if (t == 0) x = 1;
  asm volatile("barrier.cluster.arrive.release.aligned; barrier.cluster.wait.acquire.aligned;" ::: "memory");
  if (t < 8 && blockIdx.x == 0) out[t] = v[t] + (t == 7 ? x - 1 : 0);
  if (t & 1) {
    uint32_t leader, is;
    asm volatile("{ .reg .pred p; elect.sync %0|p, 0xaaaaaaaa; selp.u32 %1, 1, 0, p; }" : "=r"(leader), "=r"(is));
    out[8 + blockIdx.x * blockDim.x + t] = leader | (is << 8);
  }
}

// setmaxnreg in the producer/consumer split FA3 uses: warpgroup 0 gives registers back to the
// CTA's pool, warpgroup 1 takes the most (ptxas sets the kernel's count to the largest request, so
// it owns them already), both synchronize, then warpgroup 0 takes its registers back.
extern "C" __global__ void __launch_bounds__(256, 1) setmaxnreg_split(int* out) {
  const int wg = threadIdx.x / 128;
  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;" ::: "memory");
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;" ::: "memory");
  }
  __syncthreads();
  if (wg == 0) asm volatile("setmaxnreg.inc.sync.aligned.u32 232;" ::: "memory");
  out[threadIdx.x] = wg;
}

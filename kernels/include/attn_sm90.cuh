// Hopper's asynchronous instructions (sm_90a), one wrapper per PTX instruction and named after it
// (SASS in parentheses), and the three objects built directly on them: the shared-memory matrix
// descriptor, the TMA tile and the mbarrier ring. Everything the Hopper kernels (the prefill,
// attn_hopper.cuh, and the serving decode, decode_paged.cuh) do asynchronously goes through this
// file, so docs/perf-hopper.md's list of PTX forms is this file's list. wgmma itself is in
// attn_wgmma.cuh (generated: one wrapper per shape); the sm_80 cp.async forms (the decode's
// 4-byte scale copies among them) are in attn_ptx.cuh.
//
// Sources for the semantics: PTX ISA sections "Asynchronous Warpgroup Level Matrix Multiply-
// Accumulate" (descriptors, fragments), "Tensor Copy" (cp.async.bulk.tensor), "Bulk Copy"
// (cp.async.bulk), "mbarrier",
// "setmaxnreg", "stmatrix", "elect.sync", "membar/fence" (fence.proxy.async); the facts gathered
// in ../shared/docs/hopper-isa.md.
#pragma once
#include <cuda.h>  // CUtensorMap (128 opaque bytes, 64-byte aligned)
#include <stdint.h>
#include "attn_ptx.cuh"
#include "attn_wgmma.cuh"

namespace attn {

// ---------------------------------------------------------------------------------------------
// mbarrier (SYNCS): an 8-byte shared-memory object with a phase bit, pending arrivals and a
// transaction count (PTX ISA 9.7.13.15). A phase completes when every expected arrival came and the transaction
// count is back to zero; try_wait.parity P succeeds once the phase with parity P completed (a
// fresh barrier counts as having completed the phase before its first, so waiting for parity 1
// passes at once: producers start their "empty" waits there).

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

// Raises the transaction count by `bytes` (what the TMA or bulk copies that complete on this
// barrier will deliver), then arrives.
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

// ---------------------------------------------------------------------------------------------
// Fences, named barriers, warpgroup register budgets, election.

// Orders this thread's generic-proxy shared-memory writes (st.shared, stmatrix) before later
// async-proxy reads of them (TMA store, wgmma operands) once a barrier joins the threads.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// bar.sync / bar.arrive with an explicit thread count (BAR.SYNC / BAR.ARV): id 0 is
// __syncthreads; the kernels use 1.. for their own groups of warps (a multiple of 32 threads, the
// same count for every participant).
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// setmaxnreg (USETMAXREG): the executing warpgroup gives registers back to the SM's pool (dec) or
// takes them (inc). Every warp of the warpgroup must execute it; the kernel needs a register cap
// at entry (__launch_bounds__(threads, 1)), else ptxas ignores it (warning C7508, a build error
// here).
template <int REGS>
__device__ __forceinline__ void setmaxnreg_dec() {
  static_assert(REGS >= 24 && REGS <= 256 && REGS % 8 == 0, "setmaxnreg takes 24..256 in steps of 8");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
template <int REGS>
__device__ __forceinline__ void setmaxnreg_inc() {
  static_assert(REGS >= 24 && REGS <= 256 && REGS % 8 == 0, "setmaxnreg takes 24..256 in steps of 8");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
}

// elect.sync (ELECT): true in exactly one active lane of the warp (the lowest).
__device__ __forceinline__ bool elect_one_sync() {
  uint32_t elected;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "elect.sync _|p, 0xffffffff;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(elected));
  return elected != 0;
}

// ---------------------------------------------------------------------------------------------
// TMA and bulk copies: cp.async.bulk.tensor (UTMALDG / UTMASTG), cp.async.bulk (UBLKCP). `map` is the generic address of a tensor map
// kernel parameter (const __grid_constant__ CUtensorMap); coordinates are elements, innermost
// first. A load writes the whole box into shared memory (elements outside the tensor as zeros) and
// completes `box bytes` of transactions on `bar`; a store writes the box's in-range elements.

__device__ __forceinline__ void prefetch_tensormap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2,
                                            int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}

__device__ __forceinline__ void tma_store_4d(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2, int c3) {
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
               : "memory");
}

// Plain bulk copy (UBLKCP): `bytes` of global memory at `src` into shared memory at `dst`,
// completing `bytes` transactions on the mbarrier `bar`; src, dst and bytes multiples of 16.
// Bulk vs tensor copy: a bulk copy moves one contiguous run of bytes of any length without a
// tensor map; a tensor copy moves a box whose shape is fixed when the map is encoded on the host.
// A paged cache's pages are contiguous per KV head (attn_paged.h) but each sequence's last page
// is filled only up to its length and a window starts anywhere: bulk copies fetch exactly the
// rows that exist, where a fixed box would also read page tails (and each buffer set would need
// maps of its own). Bulk copies do not swizzle: the bytes land as they are in global memory, so a
// kernel that feeds ldmatrix restages them (decode_paged.cuh does, converting fp8 on the way).
__device__ __forceinline__ void bulk_copy_g2s(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(__cvta_generic_to_global(src)), "r"(bytes), "r"(bar)
               : "memory");
}

// The bulk stores issued so far by this thread form one group.
__device__ __forceinline__ void bulk_commit_group() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }

// At most N of this thread's bulk groups still read their shared-memory source (.read: the
// source may be overwritten once this returns; the global writes may still be in flight).
template <int N>
__device__ __forceinline__ void bulk_wait_group_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}

// At most N of this thread's bulk groups not yet complete (global writes done).
template <int N>
__device__ __forceinline__ void bulk_wait_group() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---------------------------------------------------------------------------------------------
// wgmma bookkeeping (WARPGROUP.ARRIVE, WARPGROUP.DEPBAR). The multiply-accumulates themselves are
// in attn_wgmma.cuh.

// Before the first wgmma of a batch: orders the warpgroup's earlier register and shared-memory
// accesses before the wgmma reads them.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }

// The wgmma issued since the last commit form one group.
__device__ __forceinline__ void wgmma_commit_group() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }

// At most N of this warpgroup's wgmma groups still pending (groups complete in order).
template <int N>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// An empty asm that "reads and writes" each register: uses of an accumulator (or of an A
// fragment) cannot move above the wait that precedes this, nor its producers below it. The
// compiler otherwise sees a wgmma's registers written at issue, not at the wait.
template <int NB>
__device__ __forceinline__ void wgmma_fence_operand(float (&d)[NB][4]) {
#pragma unroll
  for (int i = 0; i < NB; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[i][e])::"memory");
}
template <int NB>
__device__ __forceinline__ void wgmma_fence_operand(uint32_t (&a)[NB][4]) {
#pragma unroll
  for (int i = 0; i < NB; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[i][e])::"memory");
}

// ---------------------------------------------------------------------------------------------
// stmatrix (STSM) and 8-bit conversions.

// Four 8x8 b16 matrices to shared memory: lane 8m + r gives the address of row r of matrix m;
// register m of lane 4r + c holds the b32 word c of row r of matrix m (the C-fragment layout).
__device__ __forceinline__ void stmatrix_x4(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
}

// Four f32 -> four e4m3 in one b32, `x0` in the lowest byte (cvt.rn.satfinite.e4m3x2.f32: the
// first source goes to the upper byte). Saturating: never NaN/inf from finite inputs.
__device__ __forceinline__ uint32_t pack_e4m3x4(float x0, float x1, float x2, float x3) {
  uint16_t lo, hi;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(lo) : "f"(x1), "f"(x0));
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(hi) : "f"(x3), "f"(x2));
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

// ---------------------------------------------------------------------------------------------
// The shared-memory matrix descriptor of wgmma (64 bits): start address >> 4 in [0,14), leading
// byte offset >> 4 in [16,30), stride byte offset >> 4 in [32,46), base offset in [49,52) (0:
// every tile here starts 1024-byte aligned), swizzle mode in [62,64) (1: 128B, 2: 64B, 3: 32B).
__device__ __forceinline__ uint64_t smem_matrix_desc(uint32_t start, uint32_t lbo, uint32_t sbo, uint32_t mode) {
  return static_cast<uint64_t>((start & 0x3FFFF) >> 4) | (static_cast<uint64_t>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<uint64_t>((sbo & 0x3FFFF) >> 4) << 32) | (static_cast<uint64_t>(mode) << 62);
}

// A ROWS x COLS tile of ELEM (2 bytes: bf16, 1 byte: e4m3) in shared memory exactly as the TMA
// writes it with the swizzle of its row span: rows of COLS * sizeof(ELEM) bytes are cut into
// column blocks of kSpan = 128 bytes (64 when a row is only 64 bytes); block b holds ROWS rows of
// kSpan bytes at base + b * kBlockBytes, and the hardware swizzle XORs address bits [4, 7) with
// bits [7, 10) (128B: 16-byte chunk c of row r at c ^ (r % 8)) or bits [4, 6) with [7, 9) (64B).
// One TMA box per block (box = {kBlockCols, ROWS}), and one wgmma descriptor form per operand
// major-ness:
//  - K-major (rows = M or N, columns = K): k-step ks (32 bytes of K: k16 for bf16, k32 for e4m3)
//    starts in block ks*32 / kSpan at byte ks*32 % kSpan of the row; 8-row groups 8 * kSpan
//    bytes apart (SBO); LBO unused (16).
//  - MN-major (rows = K, columns = N; bf16 V): k16 step ks starts 16 rows down; 8-row K groups
//    1024 bytes apart (SBO); the next 64 columns of N one block further (LBO = kBlockBytes).
// The base must be 1024-byte aligned (the swizzle is a function of the absolute address; the
// descriptors' base offset field stays 0).
template <class ELEM, int ROWS, int COLS>
struct TmaTile {
  static constexpr int kElemBytes = static_cast<int>(sizeof(ELEM));
  static constexpr int kRowBytes = COLS * kElemBytes;
  static constexpr int kSpan = kRowBytes >= 128 ? 128 : kRowBytes;
  static constexpr int kBlockCols = kSpan / kElemBytes;
  static constexpr int kBlocks = kRowBytes / kSpan;
  static constexpr int kBlockBytes = ROWS * kSpan;
  static constexpr int kBytes = kBlocks * kBlockBytes;
  static constexpr uint32_t kSwizzleMode = kSpan == 128 ? 1 : 2;
  static_assert(kSpan == 128 || kSpan == 64, "rows of 64 bytes or a multiple of 128 (swizzle 64B / 128B)");
  static_assert(kRowBytes % kSpan == 0, "whole column blocks");
  static_assert(ROWS % 8 == 0 && ROWS <= 256, "TMA boxes of at most 256 rows, in 8-row swizzle groups");
  static_assert(kBlockBytes % 1024 == 0, "every block starts 1024-byte aligned (swizzle atoms)");

  uint32_t base;

  __device__ __forceinline__ uint32_t block(int b) const { return base + static_cast<uint32_t>(b * kBlockBytes); }

  // Byte address of 16-byte chunk c (of the whole row) of row r, swizzled (128-byte spans only:
  // the bf16 O staging).
  __device__ __forceinline__ uint32_t chunk128(int r, int c) const {
    static_assert(kSpan == 128, "chunk128 addresses 128-byte swizzled rows");
    return block(c >> 3) + static_cast<uint32_t>(r * 128 + (((c & 7) ^ (r & 7)) << 4));
  }

  // Descriptor of rows [row0, row0 + M) as a K-major operand, k-step ks of 32 bytes.
  __device__ __forceinline__ uint64_t desc_k_major(int row0, int ks) const {
    const int byte = ks * 32;
    const uint32_t start = block(byte / kSpan) + static_cast<uint32_t>(row0 * kSpan + byte % kSpan);
    return smem_matrix_desc(start, 16, 8 * kSpan, kSwizzleMode);
  }

  // Descriptor of the whole tile as an MN-major operand (rows = K), k16 step ks.
  __device__ __forceinline__ uint64_t desc_mn_major(int ks) const {
    static_assert(kSpan == 128 && kElemBytes == 2, "MN-major operands: 16-bit types, 128-byte swizzle");
    return smem_matrix_desc(base + static_cast<uint32_t>(ks * 16 * 128), kBlockBytes, 8 * 128, kSwizzleMode);
  }

  // The whole tile by TMA, one box per column block: block b at coordinates (c0 + b *
  // kBlockCols, c1, c2, c3), completing on `bar`.
  __device__ __forceinline__ void tma_load(const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2, int c3) const {
#pragma unroll
    for (int b = 0; b < kBlocks; ++b) tma_load_4d(block(b), map, bar, c0 + b * kBlockCols, c1, c2, c3);
  }
};

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

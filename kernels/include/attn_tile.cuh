// Shared-memory tiles and the K/V ring that fills them.
//
// SwizzledTile is a view of one bf16 tile in shared memory that owns both its swizzle and the
// ldmatrix lane addressing of the fragments read from it, so no kernel spells out lane arithmetic.
// Its loader issues one 16-byte cp.async per chunk, all threads of the CTA cooperating. KvRing is
// the multi-stage ring of K and V tiles with its cp.async commit/wait discipline.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>
#include "attn_mask.cuh"
#include "attn_ptx.cuh"

namespace attn {

// A row-major ROWS x COLS bf16 tile at shared address `base` whose 16-byte chunks are
// XOR-swizzled: chunk c of row r lives at chunk c ^ (r % 8). ldmatrix reads one 16-byte chunk
// from each of 8 consecutive rows; unswizzled, rows 128 or 256 bytes apart hit the same 4 banks
// (8-way conflict), swizzled they cover all 32 banks once (one wavefront per 8x8 matrix).
template <int ROWS, int COLS>
struct SwizzledTile {
  static constexpr int kRows = ROWS;
  static constexpr int kChunks = COLS / 8;  // 16-byte chunks per row
  static constexpr int kBytes = ROWS * COLS * 2;
  static_assert(COLS % 64 == 0, "rows must span a multiple of 128 bytes so that r % 8 picks distinct bank groups");

  uint32_t base;

  // Byte offset of chunk `c` (8 bf16) of row `r`.
  __device__ __forceinline__ static uint32_t offset(int r, int c) {
    return static_cast<uint32_t>(r * (COLS * 2) + ((c ^ (r & 7)) << 4));
  }
  __device__ __forceinline__ uint32_t chunk(int r, int c) const { return base + offset(r, c); }

  // Rows [r0, r0 + N) as a tile of their own (a warp's keys of a K/V tile); r0 % 8 == 0 keeps
  // the swizzle, which depends on r % 8.
  template <int N>
  __device__ __forceinline__ SwizzledTile<N, COLS> rows(int r0) const {
    return SwizzledTile<N, COLS>{base + static_cast<uint32_t>(r0 * (COLS * 2))};
  }

  // The ldmatrix helpers take the lane (lane_id()) from the caller, read once per warp step, so
  // that the lane arithmetic of all its fragments is shared: derived inside each helper, it cost
  // the flash d128 kernels about 60 more SASS instructions.
  //
  // The A fragment of rows [row0, row0 + 16), k16 slice kk (columns 16kk..16kk+15).
  // x4 matrices: (rows +0..7, chunk 2kk), (+8..15, 2kk), (+0..7, 2kk+1), (+8..15, 2kk+1).
  __device__ __forceinline__ void ldmatrix_a(uint32_t (&a)[4], int row0, int kk, int lane) const {
    ldmatrix_x4(a, chunk(row0 + (lane & 15), 2 * kk + (lane >> 4)));
  }

  // B fragments of the n8 blocks n0/8 and n0/8 + 1 (b[0..1] and b[2..3]) over k16 slice kk, from a
  // tile stored [n][k] (K: row = key = n). x4 matrices: (n +0..7, chunk 2kk), (+0..7, 2kk+1),
  // (+8..15, 2kk), (+8..15, 2kk+1).
  __device__ __forceinline__ void ldmatrix_b(uint32_t (&b)[4], int n0, int kk, int lane) const {
    ldmatrix_x4(b, chunk(n0 + (lane & 7) + ((lane >> 4) << 3), 2 * kk + ((lane >> 3) & 1)));
  }

  // B fragments of the n8 blocks 2np and 2np + 1 (b[0..1] and b[2..3]) over the k16 slice of rows
  // [k0, k0 + 16), from a tile stored [k][n] (V: row = key = k), transposed by ldmatrix.trans.
  // x4 matrices: (k +0..7, chunk 2np), (k +8..15, 2np), (+0..7, 2np+1), (+8..15, 2np+1).
  __device__ __forceinline__ void ldmatrix_b_trans(uint32_t (&b)[4], int k0, int np, int lane) const {
    ldmatrix_x4_trans(b, chunk(k0 + (lane & 7) + (((lane >> 3) & 1) << 3), 2 * np + (lane >> 4)));
  }

  // Rows [row0, row0 + ROWS) of a global bf16 matrix into the tile, one 16-byte cp.async per chunk,
  // THREADS threads cooperating (the same count each: no tail branch). `rows` says which global
  // rows exist and where they start; the others are zero-filled from the always-valid address `g`
  // without reading it. The caller commits the group. UNROLLED (the mainloop's K/V tiles): a
  // straight run of copies. Rolled (a once-per-CTA tile such as decode's Q): a loop whose trip
  // count the compiler does not see, which keeps its address arithmetic out of the K/V prologue's
  // schedule (unrolled, decode needed 2 to 12 more registers per thread).
  template <int THREADS, bool UNROLLED = true, class Rows>
  __device__ __forceinline__ void cp_async_rows(const __nv_bfloat16* g, int row0, const Rows& rows) const {
    static_assert((ROWS * kChunks) % THREADS == 0, "every thread issues the same number of 16-byte cp.async");
    const auto copy = [&](int c) {
      const int r = c / kChunks, ch = c % kChunks;
      const bool ok = rows.valid(row0 + r);
      const __nv_bfloat16* src = g + (ok ? rows.offset(row0 + r) + ch * 8 : 0);
      cp_async_cg_16(chunk(r, ch), src, ok);
    };
    if constexpr (UNROLLED) {
#pragma unroll
      for (int it = 0; it < ROWS * kChunks / THREADS; ++it) copy(threadIdx.x + it * THREADS);
    } else {
      for (int c = threadIdx.x; c < ROWS * kChunks; c += THREADS) copy(c);
    }
  }
};

// Row sources for SwizzledTile::cp_async_rows (element offsets from the matrix's first row).
// Rows [0, end) of a matrix with the given row stride.
struct RowsBelow {
  int64_t stride;
  int end;
  __device__ __forceinline__ bool valid(int row) const { return row < end; }
  __device__ __forceinline__ int64_t offset(int row) const { return (int64_t)row * stride; }
};

// Rows [keep.lo, keep.hi) of a matrix with the given row stride (e.g. the keys some query sees).
struct RowsIn {
  int64_t stride;
  KeyRange keep;
  __device__ __forceinline__ bool valid(int row) const { return row >= keep.lo && row < keep.hi; }
  __device__ __forceinline__ int64_t offset(int row) const { return (int64_t)row * stride; }
};

// A ring of STAGES stages in shared memory at `base`, each a K tile followed by a V tile; key
// tile n (the n-th visited, not its index) lives in stage n % STAGES. Discipline, per thread: one
// cp.async group per tile, committed even when empty, so that after fill() and n calls of
// wait_and_refill() exactly STAGES - 1 groups are younger than tile n's, and
// cp.async.wait_group STAGES-2 means "tile n has landed". Groups committed before fill() (e.g. a
// Q tile) are older than all of them. `load(n, K, V)` issues tile n's copies into K and V.
template <class Tile, int STAGES>
struct KvRing {
  static_assert(STAGES >= 2, "at least double buffering: tile n+1 loads while tile n computes");
  static constexpr int kStageBytes = 2 * Tile::kBytes;  // K then V
  static constexpr int kBytes = STAGES * kStageBytes;

  uint32_t base;

  __device__ __forceinline__ Tile k(int n) const { return Tile{base + (n % STAGES) * kStageBytes}; }
  __device__ __forceinline__ Tile v(int n) const { return Tile{base + (n % STAGES) * kStageBytes + Tile::kBytes}; }

  // Prologue: tiles 0 .. STAGES-2 in flight. UNROLLED or as a loop: a measured per-kernel choice
  // (registers and instructions; docs/KERNELS.md), the same copies and groups either way.
  template <bool UNROLLED = true, class Load>
  __device__ __forceinline__ void fill(int n_tiles, const Load& load) const {
    if constexpr (UNROLLED) {
#pragma unroll
      for (int n = 0; n < STAGES - 1; ++n) fill_one(n, n_tiles, load);
    } else {
#pragma unroll 1
      for (int n = 0; n < STAGES - 1; ++n) fill_one(n, n_tiles, load);
    }
  }

  template <class Load>
  __device__ __forceinline__ void fill_one(int n, int n_tiles, const Load& load) const {
    if (n < n_tiles) load(n, k(n), v(n));
    cp_async_commit();
  }

  // Start of iteration n: tile n has landed for every thread, and every warp is done with tile
  // n-1, whose stage is refilled with tile n + STAGES - 1.
  template <class Load>
  __device__ __forceinline__ void wait_and_refill(int n, int n_tiles, const Load& load) const {
    cp_async_wait<STAGES - 2>();  // this thread's copies of tile n ...
    __syncthreads();              // ... everyone's, and nobody still reads stage (n-1) % STAGES
    const int next = n + STAGES - 1;
    if (next < n_tiles) load(next, k(next), v(next));
    cp_async_commit();
  }
};

}  // namespace attn

// Small warp-level tile operations for tensor-core attention on sm_80+ (built for sm_90a), each
// named after the PTX it wraps. Shared by the flash prefill and the split-KV decode kernels.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"):
//   lane = 4 * group + t  (group = lane / 4 in 0..7, t = lane % 4)
//   A 16x16 (row-major, 4 x b32 = 8 bf16): a0 = (group,   2t..2t+1)  a1 = (group+8, 2t..2t+1)
//                                          a2 = (group,   2t+8..+9)  a3 = (group+8, 2t+8..+9)
//   B 16x8  ("col", 2 x b32):              b0 = (k 2t..2t+1, n group) b1 = (k 2t+8..+9, n group)
//   C 16x8  (4 x f32):                     c0,c1 = (group, 2t..2t+1)  c2,c3 = (group+8, 2t..2t+1)
// ldmatrix .x4: lane 8*m + r supplies the address of row r of 8x8 matrix m (16 bytes); register m
// of lane 4*r + w receives the b32 word w of row r of matrix m (with .trans: of column r).
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

namespace attn {

// ---------------------------------------------------------------------------------------------
// Shared memory addressing

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// A row-major tile of ROWS x COLS bf16 in shared memory whose 16-byte chunks are XOR-swizzled:
// chunk c of row r lives at chunk c ^ (r % 8). ldmatrix reads one 16-byte chunk from each of 8
// consecutive rows; unswizzled, rows 128 or 256 bytes apart hit the same 4 banks (8-way conflict),
// swizzled they cover all 32 banks once (one wavefront per 8x8 matrix, the minimum).
template <int ROWS, int COLS>
struct SwizzledTile {
  static constexpr int kChunks = COLS / 8;  // 16-byte chunks per row
  static constexpr int kBytes = ROWS * COLS * 2;
  static_assert(COLS % 64 == 0, "rows must span a multiple of 128 bytes so that r % 8 picks distinct bank groups");
  // Byte offset of chunk `c` (8 bf16) of row `r`.
  __device__ __forceinline__ static uint32_t offset(int r, int c) {
    return static_cast<uint32_t>(r * (COLS * 2) + ((c ^ (r & 7)) << 4));
  }
};

// ---------------------------------------------------------------------------------------------
// cp.async (LDGSTS): global -> shared without registers, completion tracked in groups.

// 16 bytes, L2 only (.cg). When `valid` is false, src-size 0 makes the copy write 16 zero bytes
// and read nothing (the caller still passes an in-bounds address for tools that check it).
__device__ __forceinline__ void cp_async_cg_16(uint32_t dst, const void* src, bool valid) {
  const int src_size = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(__cvta_generic_to_global(src)),
               "r"(src_size)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---------------------------------------------------------------------------------------------
// ldmatrix (LDSM) and mma.sync (HMMA)

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// D = A * B + D, bf16 inputs, f32 accumulators (in place).
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two f32 -> one b32 of two bf16 (round to nearest even); `lo` goes to the lower half, which is
// the lower column index in every fragment above.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 16-byte shared load and global store (explicit so that the access stays one vector instruction).
__device__ __forceinline__ uint4 ld_shared_v4(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr) : "memory");
  return v;
}

__device__ __forceinline__ void st_global_v4(void* ptr, uint4 v) {
  asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(__cvta_generic_to_global(ptr)), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}

__device__ __forceinline__ void st_shared_b32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}

// 2^x, the SFU's approximate exp2 (ex2.approx.ftz: 2^-inf = +0, which the masking relies on).
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---------------------------------------------------------------------------------------------
// Warp reductions over the 4 lanes of a quad (the lanes that share a row of a C fragment).

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// ---------------------------------------------------------------------------------------------
// Online softmax for the two rows (group, group + 8) a thread holds in C fragments, in the log2
// domain: scores are multiplied by scale*log2(e) (folded into one FMA with the max subtraction).
//   m: running max of scaled scores (log2 units), -inf until a visible key was seen
//   l: this thread's partial row sum (its 2 columns of every n-block); the quad's lanes share one
//      rescale factor, so the quad sum is taken once at the end.
struct OnlineSoftmaxRow {
  float m, l;
};

// Rescales for a new tile of N_BLOCKS n-blocks of scores `s` (masked entries -inf). Writes the
// probabilities back into `s` and returns the factor (per row half) the O accumulator must be
// multiplied by.
template <int N_BLOCKS>
__device__ __forceinline__ void online_softmax_update(float (&s)[N_BLOCKS][4], OnlineSoftmaxRow (&row)[2],
                                                      float scale_log2, float (&alpha)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = -INFINITY;
#pragma unroll
    for (int nb = 0; nb < N_BLOCKS; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * h], s[nb][2 * h + 1]));
    mx = quad_max(mx);
    const float m_new = fmaxf(row[h].m, mx * scale_log2);
    // A row with no visible key so far keeps m = -inf; subtract 0 instead (no -inf - -inf NaN).
    const float m_use = (m_new == -INFINITY) ? 0.f : m_new;
    alpha[h] = ex2_approx(row[h].m - m_use);
    float sum = 0.f;
#pragma unroll
    for (int nb = 0; nb < N_BLOCKS; ++nb) {
      s[nb][2 * h] = ex2_approx(fmaf(s[nb][2 * h], scale_log2, -m_use));
      s[nb][2 * h + 1] = ex2_approx(fmaf(s[nb][2 * h + 1], scale_log2, -m_use));
      sum += s[nb][2 * h] + s[nb][2 * h + 1];
    }
    row[h].l = row[h].l * alpha[h] + sum;
    row[h].m = m_new;
  }
}

}  // namespace attn

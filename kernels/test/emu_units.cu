// Test-only kernels for the emulator's unit tests: one warp-level instruction each (mma,
// ldmatrix, cp.async, shuffles, votes), every lane's registers written out so the Rust tests
// can check them against layouts worked out from the PTX ISA.
#include <cuda_bf16.h>
#include <stdint.h>

// a[r*32 + lane], b[r*32 + lane], c[r*32 + lane] -> d[r*32 + lane]
extern "C" __global__ void mma_bf16_16816(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  const int l = threadIdx.x;
  float d0, d1, d2, d3;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
      : "r"(a[l]), "r"(a[32 + l]), "r"(a[64 + l]), "r"(a[96 + l]), "r"(b[l]), "r"(b[32 + l]), "f"(c[l]),
        "f"(c[32 + l]), "f"(c[64 + l]), "f"(c[96 + l]));
  d[l] = d0;
  d[32 + l] = d1;
  d[64 + l] = d2;
  d[96 + l] = d3;
}

extern "C" __global__ void mma_f16_16816(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  const int l = threadIdx.x;
  float d0, d1, d2, d3;
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
      : "r"(a[l]), "r"(a[32 + l]), "r"(a[64 + l]), "r"(a[96 + l]), "r"(b[l]), "r"(b[32 + l]), "f"(c[l]),
        "f"(c[32 + l]), "f"(c[64 + l]), "f"(c[96 + l]));
  d[l] = d0;
  d[32 + l] = d1;
  d[64 + l] = d2;
  d[96 + l] = d3;
}

extern "C" __global__ void mma_bf16_1688(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  const int l = threadIdx.x;
  float d0, d1, d2, d3;
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};\n"
      : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
      : "r"(a[l]), "r"(a[32 + l]), "r"(b[l]), "f"(c[l]), "f"(c[32 + l]), "f"(c[64 + l]), "f"(c[96 + l]));
  d[l] = d0;
  d[32 + l] = d1;
  d[64 + l] = d2;
  d[96 + l] = d3;
}

// tile: 32 rows of 8 b16 values. Lane l supplies the address of row perm[l].
// out[r*32 + lane] = destination register r of lane.
#define LDM_KERNEL(NAME, N, TRANS)                                                                   \
  extern "C" __global__ void NAME(const uint16_t* tile, const int* perm, uint32_t* out) {          \
    __shared__ __align__(16) uint16_t s[32 * 8];                                                    \
    const int l = threadIdx.x;                                                                      \
    for (int e = l; e < 256; e += 32) s[e] = tile[e];                                               \
    __syncwarp();                                                                                   \
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(&s[perm[l] * 8]);                     \
    uint32_t r[4] = {0, 0, 0, 0};                                                                   \
    if (N == 1)                                                                                     \
      asm volatile("ldmatrix.sync.aligned.m8n8.x1" TRANS ".shared.b16 {%0}, [%1];\n"              \
                   : "=r"(r[0]) : "r"(addr));                                                       \
    if (N == 2)                                                                                     \
      asm volatile("ldmatrix.sync.aligned.m8n8.x2" TRANS ".shared.b16 {%0,%1}, [%2];\n"           \
                   : "=r"(r[0]), "=r"(r[1]) : "r"(addr));                                           \
    if (N == 4)                                                                                     \
      asm volatile("ldmatrix.sync.aligned.m8n8.x4" TRANS ".shared.b16 {%0,%1,%2,%3}, [%4];\n"     \
                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));                   \
    for (int i = 0; i < N; ++i) out[i * 32 + l] = r[i];                                             \
  }
LDM_KERNEL(ldmatrix_x1, 1, "")
LDM_KERNEL(ldmatrix_x2, 2, "")
LDM_KERNEL(ldmatrix_x4, 4, "")
LDM_KERNEL(ldmatrix_x1_trans, 1, ".trans")
LDM_KERNEL(ldmatrix_x2_trans, 2, ".trans")
LDM_KERNEL(ldmatrix_x4_trans, 4, ".trans")

// Two-stage cp.async pipeline: group 0 copies 16-byte chunks, group 1 copies 8- and 4-byte
// chunks with a partial source size (zero fill). out receives shared memory after each wait.
// src_bytes[lane] is the src-size of lane's 16-byte copy in group 1.
extern "C" __global__ void cp_async_pipeline(const uint32_t* in, const int* src_bytes, uint32_t* out) {
  __shared__ __align__(16) uint32_t s[2][32 * 4];
  const int l = threadIdx.x;
  for (int e = l; e < 256; e += 32) (&s[0][0])[e] = 0xdeadbeefu;
  __syncwarp();
  const uint32_t d0 = (uint32_t)__cvta_generic_to_shared(&s[0][l * 4]);
  const uint32_t d1 = (uint32_t)__cvta_generic_to_shared(&s[1][l * 4]);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d0), "l"(in + l * 4));
  asm volatile("cp.async.commit_group;\n" ::);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(d1), "l"(in + 128 + l * 4), "r"(src_bytes[l]));
  asm volatile("cp.async.commit_group;\n" ::);
  asm volatile("cp.async.wait_group 1;\n" ::);
  __syncwarp();
  for (int i = 0; i < 4; ++i) out[l * 4 + i] = s[0][l * 4 + i];
  asm volatile("cp.async.wait_all;\n" ::);
  __syncwarp();
  for (int i = 0; i < 4; ++i) out[128 + l * 4 + i] = s[1][l * 4 + i];
}

// out[k*32 + lane] for k = 0..: shfl up/down/xor/idx with full and segmented widths, votes.
extern "C" __global__ void shuffles(const int* in, int* out) {
  const int l = threadIdx.x;
  const int v = in[l];
  out[0 * 32 + l] = __shfl_up_sync(0xffffffffu, v, 3);
  out[1 * 32 + l] = __shfl_down_sync(0xffffffffu, v, 5);
  out[2 * 32 + l] = __shfl_xor_sync(0xffffffffu, v, 9);
  out[3 * 32 + l] = __shfl_sync(0xffffffffu, v, in[32 + l] & 31);
  out[4 * 32 + l] = __shfl_up_sync(0xffffffffu, v, 2, 8);
  out[5 * 32 + l] = __shfl_down_sync(0xffffffffu, v, 3, 16);
  out[6 * 32 + l] = __shfl_xor_sync(0xffffffffu, v, 5, 8);
  out[7 * 32 + l] = __shfl_sync(0xffffffffu, v, in[32 + l], 4);
  out[8 * 32 + l] = (int)__ballot_sync(0xffffffffu, v > 0);
  out[9 * 32 + l] = __all_sync(0xffffffffu, v > -1000);
  out[10 * 32 + l] = __any_sync(0xffffffffu, v > 1000000);
  // divergent half-warp: lanes 16..31 shuffle among themselves
  int h = -1;
  if (l >= 16) h = __shfl_xor_sync(0xffff0000u, v, 1);
  out[11 * 32 + l] = h;
}

// Counter kernels -----------------------------------------------------------------------------
extern "C" __global__ void copy_coalesced(const float* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i];
}

extern "C" __global__ void copy_strided(const float* in, float* out, int n, int stride) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i * stride];
}

// One 32x32 tile, block (32, 32).
extern "C" __global__ void transpose_naive(const float* in, float* out) {
  __shared__ float t[32][32];
  const int x = threadIdx.x, y = threadIdx.y;
  t[y][x] = in[y * 32 + x];
  __syncthreads();
  out[y * 32 + x] = t[x][y];
}

extern "C" __global__ void transpose_padded(const float* in, float* out) {
  __shared__ float t[32][33];
  const int x = threadIdx.x, y = threadIdx.y;
  t[y][x] = in[y * 32 + x];
  __syncthreads();
  out[y * 32 + x] = t[x][y];
}

// Atomics on global and shared memory.
extern "C" __global__ void atomics(const int* in, int* gsum, float* fsum, int* gmax, int* out) {
  __shared__ int ssum;
  if (threadIdx.x == 0) ssum = 0;
  __syncthreads();
  const int v = in[blockIdx.x * blockDim.x + threadIdx.x];
  atomicAdd(&ssum, v);
  atomicAdd(gsum, v);
  atomicAdd(fsum, (float)v * 0.5f);
  atomicMax(gmax, v);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = ssum;
}

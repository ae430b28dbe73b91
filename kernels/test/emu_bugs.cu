// Planted bugs for the emulator's sanitizer tests: each kernel has one bug, marked with a
// "BUG:" comment on the offending line (the tests find that line and expect a finding there).
#include <stdint.h>

extern "C" __global__ void bug_off_by_one(const float* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) out[i] = 2.0f;  // BUG: off-by-one store
  (void)in;
}

// block 64: each warp reads the other warp's second write without a barrier.
extern "C" __global__ void bug_missing_sync(const float* in, float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  s[t] = in[t];
  __syncthreads();
  s[t] = in[t] * 2.0f;  // BUG: missing __syncthreads between this write and the read below
  out[t] = s[(t + 32) % 64];
}

extern "C" __global__ void bug_uninit_shared(float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  if (t < 32) s[t] = 1.0f;
  __syncthreads();
  out[t] = s[t];  // BUG: uninitialized shared read for t >= 32
}

extern "C" __global__ void bug_divergent_barrier(float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  s[t] = (float)t;
  if (t < 16) __syncthreads();  // BUG: divergent barrier
  out[t] = s[t];
}

extern "C" __global__ void bug_shuffle_mask(const int* in, int* out) {
  const int t = threadIdx.x;
  out[t] = __shfl_xor_sync(0x0000ffffu, in[t], 1);  // BUG: mask names only half the warp
}

extern "C" __global__ void bug_misaligned(const float* in, float* out) {
  const int t = threadIdx.x;
  const float4 v = *reinterpret_cast<const float4*>(in + 4 * t + 1);  // BUG: misaligned vector load
  out[t] = v.x + v.y + v.z + v.w;
}

extern "C" __global__ void bug_uninit_global(const float* in, float* out) {
  const int t = threadIdx.x;
  out[t] = in[t] + 1.0f;  // BUG: in was allocated but never written
}

// One warp: lanes read what their neighbour wrote. Without __syncwarp this is a race under
// independent thread scheduling; the _ok twin has the __syncwarp and must be clean.
extern "C" __global__ void bug_missing_syncwarp(const int* in, int* out) {
  __shared__ int s[32];
  const int l = threadIdx.x;
  s[l] = in[l];
  out[l] = s[(l + 1) % 32];  // BUG: missing __syncwarp before reading a neighbour's write
}

extern "C" __global__ void ok_syncwarp(const int* in, int* out) {
  __shared__ int s[32];
  const int l = threadIdx.x;
  s[l] = in[l];
  __syncwarp();
  out[l] = s[(l + 1) % 32];
}

// Not a bug but an instruction the emulator does not implement (testp): launching it must fail
// with an error naming the instruction and its PTX line, never skip it.
extern "C" __global__ void emu_unsupported(const float* in, int* out) {
  int r;
  asm volatile("{ .reg .pred p; testp.finite.f32 p, %1; selp.s32 %0, 1, 0, p; }" : "=r"(r) : "f"(in[threadIdx.x]));
  out[threadIdx.x] = r;
}

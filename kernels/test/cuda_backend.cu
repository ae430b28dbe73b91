// Test-only kernels for the device backends (tests/device_backends.rs): the same launch on the
// CUDA device and the emulator must give identical outputs, including a launch whose dynamic
// shared memory exceeds the 48 KB default (the CUDA backend must opt in).
#include <stdint.h>

// out[n-1-i] = in[i] * scale + bias, staged through `n` floats of dynamic shared memory.
extern "C" __global__ void smem_reverse(const float* in, float* out, int n, float scale, float bias) {
  extern __shared__ float buf[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = in[blockIdx.x * n + i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + n - 1 - i] = buf[i] * scale + bias;
}

// A by-value struct parameter with mixed member sizes: the launch path must pass its bytes intact.
struct Mixed {
  uint64_t ptr;
  int32_t a;
  int32_t b;
  double c;
  uint16_t d[4];
};

extern "C" __global__ void by_value(Mixed m, int32_t* out) {
  if (threadIdx.x == 0) {
    int32_t* o = reinterpret_cast<int32_t*>(m.ptr);
    o[0] = m.a;
    o[1] = m.b;
    o[2] = (int32_t)(m.c * 1000.0);
    for (int i = 0; i < 4; ++i) o[3 + i] = m.d[i];
    out[0] = 1;
  }
}

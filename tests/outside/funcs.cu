// Device code as libraries write it: a lookup table in __constant__ memory, a module variable
// with an initializer, a helper the compiler must not inline, and an assert.
#include <cassert>

__constant__ int weights[8] = {3, -1, 4, 1, -5, 9, 2, -6};
__device__ int bias = 1000;
__device__ unsigned launches = 0;

__device__ __noinline__ int dot8(const int* v, int shift) {
    int acc = 0;
#pragma unroll 1
    for (int j = 0; j < 8; ++j) acc += v[j] * weights[(j + shift) & 7];
    return acc + bias;
}

// out[i] = dot8(in + 8*i, i) for i < n; assert(n <= limit)
extern "C" __global__ void weighted(const int* in, int* out, int n, int limit) {
    assert(n <= limit);
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i == 0) atomicAdd(&launches, 1u);
    if (i < n) out[i] = dot8(in + 8 * i, i);
}

extern "C" __global__ void read_launches(unsigned* out) { *out = launches; }

// Block-wide sum, min and vote statistics in the usual CUDA style: a grid-stride loop, a warp
// reduction with __shfl_down_sync, one partial per warp in shared memory, then atomics.
#include <cstdint>

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = warpSize / 2; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ int warp_min(int v) {
    for (int off = 16; off > 0; off >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// out[0] += sum(x); imin[0] = min(keys, imin[0]); counts[0] += #positive x; counts[1] += #warps that
// saw a negative x; counts[2] += #lanes that saw a positive x
extern "C" __global__ void block_reduce(const float* __restrict__ x, const int* __restrict__ keys, int n,
                                        float* out, int* imin, unsigned* counts) {
    __shared__ float partial[32];
    __shared__ int pmin[32];
    float s = 0.0f;
    int m = 0x7fffffff;
    unsigned pos = 0;
    bool neg = false;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float v = x[i];
        s += v;
        m = min(m, keys[i]);
        pos += v > 0.0f;
        neg |= v < 0.0f;
    }
    unsigned lane = threadIdx.x % warpSize, warp = threadIdx.x / warpSize;
    s = warp_sum(s);
    m = warp_min(m);
    bool any_neg = __any_sync(0xffffffffu, neg);
    if (lane == 0) {
        partial[warp] = s;
        pmin[warp] = m;
    }
    // Lanes that saw a positive value, then the count over the warp.
    unsigned ballot = __ballot_sync(0xffffffffu, pos > 0);
    unsigned total_pos = pos;
    for (int off = 16; off > 0; off /= 2) total_pos += __shfl_down_sync(0xffffffffu, total_pos, off);
    if (lane == 0) {
        atomicAdd(&counts[0], total_pos);
        atomicAdd(&counts[1], any_neg ? 1u : 0u);
        atomicAdd(&counts[2], __popc(ballot));
    }
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x / warpSize;
        float t = lane < nw ? partial[lane] : 0.0f;
        int tm = lane < nw ? pmin[lane] : 0x7fffffff;
        t = warp_sum(t);
        tm = warp_min(tm);
        if (lane == 0) {
            atomicAdd(out, t);
            atomicMin(imin, tm);
        }
    }
}

// Two kernels of one file, each with its own dynamic shared array of another element type, the
// second staging its tile with cp.async (cuda_pipeline.h primitives).
#include <cuda_pipeline.h>

// y[i] = x[i] + x[(i + 1) % blockDim.x of the block] (a rotate through shared memory)
extern "C" __global__ void rotate_f32(const float* x, float* y) {
    extern __shared__ float sf[];
    int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    sf[t] = x[base + t];
    __syncthreads();
    y[base + t] = sf[t] + sf[(t + 1) % blockDim.x];
}

// The block's tile of 2*blockDim.x doubles arrives by cp.async (8 bytes per copy, two per
// thread); out[i] = tile[2t] * tile[2t+1] for the block's thread t.
extern "C" __global__ void pair_products_f64(const double* x, double* out) {
    extern __shared__ double sd[];
    int t = threadIdx.x;
    const double* src = x + 2 * blockIdx.x * blockDim.x;
    __pipeline_memcpy_async(&sd[t], &src[t], sizeof(double));
    __pipeline_memcpy_async(&sd[t + blockDim.x], &src[t + blockDim.x], sizeof(double));
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    out[blockIdx.x * blockDim.x + t] = sd[2 * t] * sd[2 * t + 1];
}

// C = A * B with the WMMA API: one warp per 16x16 tile of C, A row-major, B column-major,
// bf16 in / f32 out (and an f16 variant with a half accumulator and 32x8 tiles).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
using namespace nvcuda;

// A: M x K row-major, B: K x N col-major, C: M x N row-major; M, N, K multiples of 16.
extern "C" __global__ void gemm_bf16(const __nv_bfloat16* A, const __nv_bfloat16* B, float* C, int M, int N, int K) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / warpSize;
    int tiles_n = N / 16;
    int tm = warp / tiles_n, tn = warp % tiles_n;
    if (tm * 16 >= M) return;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
    wmma::fill_fragment(c, 0.0f);
    for (int k = 0; k < K; k += 16) {
        wmma::load_matrix_sync(a, A + tm * 16 * K + k, K);
        wmma::load_matrix_sync(b, B + tn * 16 * K + k, K);
        wmma::mma_sync(c, a, b, c);
    }
    wmma::store_matrix_sync(C + tm * 16 * N + tn * 16, c, N, wmma::mem_row_major);
}

// C (32 x 8, col-major, half) = alpha * (A * B) + C: A 32 x 16 col-major, B 16 x 8 row-major.
extern "C" __global__ void axpy_f16(const half* A, const half* B, half* C, float alpha) {
    wmma::fragment<wmma::matrix_a, 32, 8, 16, half, wmma::col_major> a;
    wmma::fragment<wmma::matrix_b, 32, 8, 16, half, wmma::row_major> b;
    wmma::fragment<wmma::accumulator, 32, 8, 16, half> acc, c;
    wmma::load_matrix_sync(a, A, 32);
    wmma::load_matrix_sync(b, B, 8);
    wmma::load_matrix_sync(c, C, 32, wmma::mem_col_major);
    wmma::fill_fragment(acc, __float2half(0.0f));
    wmma::mma_sync(acc, a, b, acc);
    // Element-wise on the fragments (the same operation on every element: layout-independent).
    for (int i = 0; i < acc.num_elements; ++i)
        c.x[i] = __float2half(__half2float(c.x[i]) + alpha * __half2float(acc.x[i]));
    wmma::store_matrix_sync(C, c, 32, wmma::mem_col_major);
}

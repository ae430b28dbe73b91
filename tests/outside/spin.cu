// Warps that wait for other warps without a CTA barrier: the sync() of 64-thread cooperative-groups
// tiles (their barrier is a word of the runtime's reserved shared memory that the tile's warps spin
// on), and a hand-off from one warp to another through a flag in global memory.
#include <cooperative_groups.h>
namespace cg = cooperative_groups;

// Each 64-thread tile swaps values between its two warps through shared memory, twice (the tile's
// barrier is reused): out[t] = 2 * x[partner(t)] + 1 read back at another offset of the tile.
extern "C" __global__ void tile64_exchange(const int* x, int* out) {
    __shared__ int s[256];
    cg::thread_block b = cg::this_thread_block();
    auto q = cg::tiled_partition<64>(b);
    unsigned t = b.thread_rank(), r = q.thread_rank(), base = t - r;
    s[t] = x[blockIdx.x * b.size() + t];
    q.sync();
    int v = s[base + (r + 32) % 64];
    q.sync();
    s[t] = 2 * v + 1;
    q.sync();
    out[blockIdx.x * b.size() + t] = s[base + (r + 17) % 64];
}

// Warp 1 of each block computes data and raises the block's flag; warp 0 spins on the flag, then
// reads the data. flag[] must be zero before the launch.
extern "C" __global__ void handoff(const int* x, int* data, volatile int* flag, int* out) {
    unsigned w = threadIdx.x / 32, l = threadIdx.x % 32, at = blockIdx.x * 32 + l;
    if (w == 1) {
        data[at] = 3 * x[at] - 7;
        __syncwarp();
        if (l == 0) {
            __threadfence();
            flag[blockIdx.x] = 1;
        }
    } else if (w == 0) {
        while (flag[blockIdx.x] == 0) {
        }
        __threadfence();
        out[at] = data[at] + 1;
    }
}

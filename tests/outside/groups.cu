// Cooperative groups: block sync, a reduction over 32-thread tiles, 16-thread tiles of a
// dynamic partition, and the 64-thread tiles whose bookkeeping lives in reserved shared memory.
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
namespace cg = cooperative_groups;

// out[w] = sum of the block's x over 32-thread tile w; lo16[t16] = min over each 16-thread tile;
// meta[t] = (64-thread tile index, rank in it).
extern "C" __global__ void tiles(const int* x, int* out, int* lo16, int2* meta) {
    __shared__ int s[256];
    cg::thread_block b = cg::this_thread_block();
    unsigned t = b.thread_rank();
    s[t] = x[blockIdx.x * b.size() + t];
    b.sync();
    int v = s[(t + 1) % b.size()];
    auto w = cg::tiled_partition<32>(b);
    int sum = cg::reduce(w, v, cg::plus<int>());
    if (w.thread_rank() == 0) out[blockIdx.x * (b.size() / 32) + w.meta_group_rank()] = sum;
    auto h = cg::tiled_partition<16>(b);
    int lo = cg::reduce(h, v, cg::less<int>());
    if (h.thread_rank() == 0) lo16[blockIdx.x * (b.size() / 16) + h.meta_group_rank()] = lo;
    auto q = cg::tiled_partition<64>(b);
    meta[blockIdx.x * b.size() + t] = make_int2(q.meta_group_rank(), q.thread_rank());
}

// Inline PTX with a local label in its own { } scope, in a helper inlined twice: each copy must
// branch to its own label.
__device__ __forceinline__ unsigned count_down(unsigned n, unsigned step) {
    unsigned iters;
    asm volatile(
        "{\n\t"
        ".reg .pred p;\n\t"
        "mov.u32 %0, 0;\n"
        "$Lloop:\n\t"
        "add.u32 %0, %0, 1;\n\t"
        "sub.u32 %1, %1, %2;\n\t"
        "setp.gt.s32 p, %1, 0;\n\t"
        "@p bra $Lloop;\n\t"
        "}"
        : "=r"(iters), "+r"(n)
        : "r"(step));
    return iters;
}

// out[t] = ceil(a[t] / 3) * 1000 + ceil(b[t] / 5)
extern "C" __global__ void two_loops(const unsigned* a, const unsigned* b, unsigned* out) {
    unsigned t = threadIdx.x;
    out[t] = count_down(a[t], 3) * 1000 + count_down(b[t], 5);
}

// match: out[t] = __match_any_sync(~0, key) and the rank of the lane among its key's lanes
// (__popc of the lower lanes), first = __ffs of the group
extern "C" __global__ void groups_by_key(const int* keys, unsigned* same, unsigned* rank, int* first) {
    unsigned t = threadIdx.x;
    int k = keys[blockIdx.x * blockDim.x + t];
    unsigned m = __match_any_sync(0xffffffffu, k);
    unsigned lane = t % 32;
    same[blockIdx.x * blockDim.x + t] = m;
    rank[blockIdx.x * blockDim.x + t] = __popc(m & ((1u << lane) - 1));
    first[blockIdx.x * blockDim.x + t] = __ffs(m) - 1;
}

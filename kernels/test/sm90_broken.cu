// Deliberately broken Hopper kernels (test-only, allow-listed in build.rs: MAY_SERIALIZE). Each
// makes ptxas report the loss that build.rs refuses in every other module, and tests/
// kernels_static.rs checks that the report reached the embedded table. Never launched.
#include "attn_sm90.cuh"

// setmaxnreg without a register cap at entry (no __launch_bounds__): ptxas ignores it (C7508).
extern "C" __global__ void sm90_broken_setmaxnreg_uncapped(float* out) {
  if (threadIdx.x < 128)
    attn::setmaxnreg_dec<40>();
  else
    attn::setmaxnreg_inc<232>();
  out[threadIdx.x] = 1.f;
}

// An accumulator written by an ordinary instruction between two wgmma of one pipeline stage:
// ptxas serializes the wgmma and injects waits (C7511, C7517, C7519).
extern "C" __global__ void __launch_bounds__(128, 1)
    sm90_broken_wgmma_accumulator_touched(float* out, uint64_t desc_a, uint64_t desc_b) {
  float d[8][4];
  for (int i = 0; i < 8; ++i)
    for (int e = 0; e < 4; ++e) d[i][e] = 0.f;
  attn::wgmma_fence();
  attn::wgmma_ss_bf16<1, 0>(d, desc_a, desc_b);
  attn::wgmma_commit_group();
  d[0][0] += 1.f;
  attn::wgmma_ss_bf16<1, 0>(d, desc_a, desc_b);
  attn::wgmma_commit_group();
  attn::wgmma_wait_group<0>();
  float s = 0.f;
  for (int i = 0; i < 8; ++i)
    for (int e = 0; e < 4; ++e) s += d[i][e];
  out[threadIdx.x] = s;
}

// wgmma, stmatrix and fp8 conversions as nvcc compiles them (inline PTX), for the emulator tests
// and the GPU cross-check of tests/emu_wgmma.rs (tests/wgmma/gpu.rs). The wgmma kernels share one
// signature with the PTX those tests generate: a shared-memory image per block (built by the
// host model, copied in), per block the A and B descriptors (start relative to the image) and
// scale-d, the C and A register fragments per thread, and the D fragments out. Each form is
// instantiated for a few shapes; the layouts (swizzle, major, LBO/SBO) are runtime data.
//
// Registers are pinned around the asynchronous window (CUTLASS's warpgroup_fence_operand idea):
// without it nvcc may move the fragment loads below wgmma.fence, which PTX forbids and the
// emulator's sanitizer reports.
#include <cstdint>

namespace wgu {

__device__ __forceinline__ uint32_t load_image(unsigned char* smem, const uint4* img, unsigned bytes) {
  const uint4* src = img + blockIdx.x * (bytes / 16);
  uint4* dst = reinterpret_cast<uint4*>(smem);
  for (unsigned i = threadIdx.x; i < bytes / 16; i += 128) dst[i] = src[i];
  // wgmma reads shared memory through the async proxy: the generic stores need a proxy fence
  // ordered before it (PTX ISA: the wgmma chapter's "Async Proxy" section; 9.7.13.4 fence).
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  __syncthreads();
  return static_cast<uint32_t>(__cvta_generic_to_shared(smem));
}

__device__ __forceinline__ void load_meta(const unsigned long long* meta, uint32_t base, unsigned long long& da,
                                          unsigned long long& db, uint32_t& scale) {
  const unsigned long long* m = meta + blockIdx.x * 4;
  da = m[0] + (base >> 4);
  db = m[1] + (base >> 4);
  scale = static_cast<uint32_t>(m[2]);
}

template <class T, int N>
__device__ __forceinline__ void load_regs(T (&r)[N], const uint32_t* src) {
#pragma unroll
  for (int i = 0; i < N; ++i) r[i] = __builtin_bit_cast(T, src[i]);
}

template <class T, int N>
__device__ __forceinline__ void store_regs(uint32_t* dst, T (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) dst[i] = __builtin_bit_cast(uint32_t, r[i]);
}

template <int N>
__device__ __forceinline__ void fence_operands(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

template <int N>
__device__ __forceinline__ void fence_operands(uint32_t (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }

}  // namespace wgu

extern "C" __global__ void __launch_bounds__(128) wg_ss_bf16_n64_t00(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_bf16_n64_t01(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, -1, 1, 0, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_bf16_n64_t10(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, -1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_bf16_n64_t11(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, -1, -1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_rs_bf16_n64_t0(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  uint32_t ar[4]; wgu::load_regs(ar, a + t * 4);
  wgu::fence_operands(d);
  wgu::fence_operands(ar);
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(ar[0]), "r"(ar[1]), "r"(ar[2]), "r"(ar[3]), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_rs_bf16_n64_t1(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  uint32_t ar[4]; wgu::load_regs(ar, a + t * 4);
  wgu::fence_operands(d);
  wgu::fence_operands(ar);
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, -1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(ar[0]), "r"(ar[1]), "r"(ar[2]), "r"(ar[3]), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_f16_f16acc_n64_t01(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  uint32_t d[16];
  wgu::load_regs(d, c + t * 16);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f16.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1, 0, 1;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 16, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_bf16_n256_t00(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[128];
  wgu::load_regs(d, c + t * 128);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 128, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_bf16_n256_t01(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[128];
  wgu::load_regs(d, c + t * 128);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1, 0, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 128, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_rs_bf16_n256_t1(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[128];
  wgu::load_regs(d, c + t * 128);
  uint32_t ar[4]; wgu::load_regs(ar, a + t * 4);
  wgu::fence_operands(d);
  wgu::fence_operands(ar);
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, {%128,%129,%130,%131}, %132, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "r"(ar[0]), "r"(ar[1]), "r"(ar[2]), "r"(ar[3]), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 128, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_e4m3_n64(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_e5m2e4m3_n64(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e5m2.e4m3 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, -1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_rs_e4m3e5m2_n64(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[32];
  wgu::load_regs(d, c + t * 32);
  uint32_t ar[4]; wgu::load_regs(ar, a + t * 4);
  wgu::fence_operands(d);
  wgu::fence_operands(ar);
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e5m2 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(ar[0]), "r"(ar[1]), "r"(ar[2]), "r"(ar[3]), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 32, d);
}

extern "C" __global__ void __launch_bounds__(128) wg_ss_e4m3_n256(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[128];
  wgu::load_regs(d, c + t * 128);
  
  wgu::fence_operands(d);
  
  wgu::fence();
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k32.f32.e4m3.e4m3 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(scale)
      : "memory");
  wgu::commit();
  wgu::wait0();
  wgu::fence_operands(d);
  wgu::store_regs(out + t * 128, d);
}

// A chain of m64n256k16 wgmmas accumulating A (64 x 64) B (64 x 256) `iters` times, both K-major
// with the 128B swizzle (one 1024-byte atom per 8 rows): each k16 step advances the descriptors'
// start by 32 bytes inside the atom, as CUTLASS and FA3 do (the swizzle is a function of the
// absolute address). The emulator's wgmma throughput benchmark, and a GPU check of that advance.
extern "C" __global__ void __launch_bounds__(128) wg_chain_bf16_n256(const uint4* img, const unsigned long long* meta,
    const uint32_t* c, const uint32_t* a, uint32_t* out, unsigned img_bytes, int iters) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const uint32_t base = wgu::load_image(smem, img, img_bytes);
  unsigned long long da, db;
  uint32_t scale;
  wgu::load_meta(meta, base, da, db, scale);
  const uint32_t t = blockIdx.x * 128 + threadIdx.x;
  float d[128];
  wgu::load_regs(d, c + t * 128);
  wgu::fence_operands(d);
  for (int it = 0; it < iters; ++it) {
    wgu::fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
      const unsigned long long ka = da + 2 * ks, kb = db + 2 * ks;
      asm volatile(
          "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
          : "l"(ka), "l"(kb), "r"(scale)
          : "memory");
      scale = 1;
    }
    wgu::commit();
    wgu::wait0();
    wgu::fence_operands(d);
  }
  wgu::store_regs(out + t * 128, d);
}

// stmatrix: lane l's registers from vals[l * NUM ..]; lane l gives the address of 16-byte slot
// slots[l] of a 512-byte buffer every thread first fills with 0xa5; the buffer is copied out.
template <int NUM, bool TRANS>
__device__ __forceinline__ void stm(const uint32_t* vals, const uint32_t* slots, uint4* out) {
  __shared__ __align__(16) uint4 buf[32];
  buf[threadIdx.x] = make_uint4(0xa5a5a5a5u, 0xa5a5a5a5u, 0xa5a5a5a5u, 0xa5a5a5a5u);
  __syncthreads();
  uint32_t v[4] = {0, 0, 0, 0};
  for (int j = 0; j < NUM; ++j) v[j] = vals[threadIdx.x * NUM + j];
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(&buf[slots[threadIdx.x]]));
  if constexpr (NUM == 1 && !TRANS) asm volatile("stmatrix.sync.aligned.m8n8.x1.shared.b16 [%0], {%1};" :: "r"(addr), "r"(v[0]) : "memory");
  if constexpr (NUM == 1 && TRANS) asm volatile("stmatrix.sync.aligned.m8n8.x1.trans.shared.b16 [%0], {%1};" :: "r"(addr), "r"(v[0]) : "memory");
  if constexpr (NUM == 2 && !TRANS) asm volatile("stmatrix.sync.aligned.m8n8.x2.shared.b16 [%0], {%1, %2};" :: "r"(addr), "r"(v[0]), "r"(v[1]) : "memory");
  if constexpr (NUM == 2 && TRANS) asm volatile("stmatrix.sync.aligned.m8n8.x2.trans.shared.b16 [%0], {%1, %2};" :: "r"(addr), "r"(v[0]), "r"(v[1]) : "memory");
  if constexpr (NUM == 4 && !TRANS) asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" :: "r"(addr), "r"(v[0]), "r"(v[1]), "r"(v[2]), "r"(v[3]) : "memory");
  if constexpr (NUM == 4 && TRANS) asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};" :: "r"(addr), "r"(v[0]), "r"(v[1]), "r"(v[2]), "r"(v[3]) : "memory");
  __syncthreads();
  out[threadIdx.x] = buf[threadIdx.x];
}
extern "C" __global__ void stm_x1(const uint32_t* vals, const uint32_t* slots, uint4* out) {
  stm<1, false>(vals, slots, out);
}
extern "C" __global__ void stm_x1_t(const uint32_t* vals, const uint32_t* slots, uint4* out) {
  stm<1, true>(vals, slots, out);
}
extern "C" __global__ void stm_x2(const uint32_t* vals, const uint32_t* slots, uint4* out) {
  stm<2, false>(vals, slots, out);
}
extern "C" __global__ void stm_x2_t(const uint32_t* vals, const uint32_t* slots, uint4* out) {
  stm<2, true>(vals, slots, out);
}
extern "C" __global__ void stm_x4(const uint32_t* vals, const uint32_t* slots, uint4* out) {
  stm<4, false>(vals, slots, out);
}
extern "C" __global__ void stm_x4_t(const uint32_t* vals, const uint32_t* slots, uint4* out) {
  stm<4, true>(vals, slots, out);
}

// fp8 conversions, one per thread (the same entries as the tests' generated PTX).
extern "C" __global__ void cvt_f32_e4m3x2(const float2* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(d) : "f"(in[i].x), "f"(in[i].y));
  out[i] = d;
}
extern "C" __global__ void cvt_f16x2_e4m3x2(const uint32_t* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.e4m3x2.f16x2 %0, %1;" : "=h"(d) : "r"(in[i]));
  out[i] = d;
}
extern "C" __global__ void cvt_to_f16x2_e4m3x2(const uint16_t* in, uint32_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint32_t d;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(d) : "h"(in[i]));
  out[i] = d;
}
extern "C" __global__ void cvt_f32_e4m3x2_relu(const float2* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.relu.e4m3x2.f32 %0, %1, %2;" : "=h"(d) : "f"(in[i].x), "f"(in[i].y));
  out[i] = d;
}
extern "C" __global__ void cvt_f16x2_e4m3x2_relu(const uint32_t* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.relu.e4m3x2.f16x2 %0, %1;" : "=h"(d) : "r"(in[i]));
  out[i] = d;
}
extern "C" __global__ void cvt_to_f16x2_e4m3x2_relu(const uint16_t* in, uint32_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint32_t d;
  asm("cvt.rn.relu.f16x2.e4m3x2 %0, %1;" : "=r"(d) : "h"(in[i]));
  out[i] = d;
}
extern "C" __global__ void cvt_f32_e5m2x2(const float2* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(d) : "f"(in[i].x), "f"(in[i].y));
  out[i] = d;
}
extern "C" __global__ void cvt_f16x2_e5m2x2(const uint32_t* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.e5m2x2.f16x2 %0, %1;" : "=h"(d) : "r"(in[i]));
  out[i] = d;
}
extern "C" __global__ void cvt_to_f16x2_e5m2x2(const uint16_t* in, uint32_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint32_t d;
  asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(d) : "h"(in[i]));
  out[i] = d;
}
extern "C" __global__ void cvt_f32_e5m2x2_relu(const float2* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.relu.e5m2x2.f32 %0, %1, %2;" : "=h"(d) : "f"(in[i].x), "f"(in[i].y));
  out[i] = d;
}
extern "C" __global__ void cvt_f16x2_e5m2x2_relu(const uint32_t* in, uint16_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint16_t d;
  asm("cvt.rn.satfinite.relu.e5m2x2.f16x2 %0, %1;" : "=h"(d) : "r"(in[i]));
  out[i] = d;
}
extern "C" __global__ void cvt_to_f16x2_e5m2x2_relu(const uint16_t* in, uint32_t* out, unsigned n) {
  const unsigned i = blockIdx.x * 128 + threadIdx.x;
  if (i >= n) return;
  uint32_t d;
  asm("cvt.rn.relu.f16x2.e5m2x2 %0, %1;" : "=r"(d) : "h"(in[i]));
  out[i] = d;
}

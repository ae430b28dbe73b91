//! wgmma test cases: one instruction form ([`Form`]), per block one case (operands, layouts,
//! scale-d) turned into a shared-memory image, descriptors and register fragments by the host
//! model ([`super::host`]), the kernel signature both the generated PTX and the nvcc-compiled
//! kernels of kernels/test/wgmma_units.cu share, and the expected D.
#![allow(dead_code)]

use super::host::{canonical, frag_pos, Elem, Layout};
use attnjoule::device::{DevBuf, Device, LaunchConfig, LaunchReport};
use attnjoule::kernels::{KernelModule, KernelRef};
use half::f16;
use std::sync::atomic::{AtomicU32, Ordering};

/// The static part of one wgmma instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Form {
    pub n: u32,
    pub at: Elem,
    pub bt: Elem,
    pub f16_acc: bool,
    pub a_regs: bool,
    pub neg_a: bool,
    pub neg_b: bool,
    /// A / B MN-major (imm-trans-a / imm-trans-b).
    pub tnsp_a: bool,
    pub tnsp_b: bool,
    /// scale-d as an immediate instead of the predicate from the case.
    pub imm_scale_d: Option<bool>,
}

impl Form {
    pub fn k(&self) -> u32 {
        32 / self.at.bytes()
    }
    pub fn d_regs(&self) -> u32 {
        if self.f16_acc {
            self.n / 4
        } else {
            self.n / 2
        }
    }
    pub fn name(&self) -> String {
        format!(
            "wg_n{}_{}{}_{}_{}{}{}{}{}{}",
            self.n,
            self.at.ptx(),
            self.bt.ptx(),
            if self.f16_acc { "f16" } else { "f32" },
            if self.a_regs { "rs" } else { "ss" },
            self.tnsp_a as u8,
            self.tnsp_b as u8,
            if self.neg_a { "m" } else { "p" },
            if self.neg_b { "m" } else { "p" },
            match self.imm_scale_d {
                None => "",
                Some(true) => "_d1",
                Some(false) => "_d0",
            }
        )
    }
}

/// One block's case.
#[derive(Debug, Clone)]
pub struct Case {
    /// A (64 x K, row-major), B (K x N, row k at k*N), C (64 x N): values exact in their types.
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub c: Vec<f64>,
    pub la: Layout,
    pub lb: Layout,
    pub scale_d: bool,
}

/// Deterministic stream (splitmix64) for test data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A small integer in [-4, 4] (exact in every operand type; sums stay exact in f16 and f32).
    pub fn small(&mut self) -> f64 {
        self.below(9) as f64 - 4.0
    }
}

/// Operand values: small integers (`exact`: every sum is exact, so any accumulation order gives
/// the same bits), or random values of the type spread over [-2, 2].
pub fn values(rng: &mut Rng, e: Elem, count: usize, exact: bool) -> Vec<f64> {
    (0..count)
        .map(|_| {
            if exact {
                return rng.small();
            }
            loop {
                let bits = match e {
                    Elem::Bf16 | Elem::F16 => {
                        let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0;
                        if e == Elem::Bf16 {
                            half::bf16::from_f64(x).to_bits() as u32
                        } else {
                            f16::from_f64(x).to_bits() as u32
                        }
                    }
                    _ => rng.below(256) as u32,
                };
                let v = e.value(bits);
                if v.is_finite() && v.abs() <= 64.0 {
                    return v;
                }
            }
        })
        .collect()
}

/// A case for `form`: operand layouts with swizzles `swz_a` / `swz_b`, random tiling variants.
pub fn make_case(form: &Form, rng: &mut Rng, swz_a: u32, swz_b: u32, scale_d: bool, exact: bool) -> Case {
    let k = form.k();
    let a = values(rng, form.at, (64 * k) as usize, exact);
    let b = values(rng, form.bt, (k * form.n) as usize, exact);
    let c: Vec<f64> = (0..64 * form.n)
        .map(|_| if exact { rng.small() * 4.0 } else { (rng.below(2001) as f64 - 1000.0) / 64.0 })
        .collect();
    let la = canonical(!form.tnsp_a, swz_a, form.at, 64, rng.below(2) as u32, 0);
    let lb_start = region_bytes(&la, form.at, 64, k);
    let lb = canonical(!form.tnsp_b, swz_b, form.bt, form.n, rng.below(2) as u32, lb_start);
    Case { a, b, c, la, lb, scale_d }
}

/// Bytes from 0 to the end of an operand's region, rounded up to 1024 (the next region's start
/// keeps every swizzle pattern aligned).
pub fn region_bytes(l: &Layout, e: Elem, rows: u32, k: u32) -> u32 {
    let mut end = l.start;
    for x in 0..rows {
        for y in 0..k {
            end = end.max(l.addr(e, x, y) + e.bytes());
        }
    }
    end.div_ceil(1024) * 1024
}

/// The shared-memory image of a case (A then B); panics if two elements share bytes.
pub fn image(form: &Form, cs: &Case, bytes: usize) -> Vec<u8> {
    let k = form.k();
    let mut img = vec![0u8; bytes];
    let mut used = vec![false; bytes];
    let mut put = |l: &Layout, e: Elem, x: u32, y: u32, v: f64| {
        let at = l.addr(e, x, y) as usize;
        let bits = e.bits(v);
        for j in 0..e.bytes() as usize {
            assert!(!used[at + j], "layout {l:?} places two elements at byte {}", at + j);
            used[at + j] = true;
            img[at + j] = (bits >> (8 * j)) as u8;
        }
    };
    if !form.a_regs {
        for m in 0..64 {
            for kk in 0..k {
                put(&cs.la, form.at, m, kk, cs.a[(m * k + kk) as usize]);
            }
        }
    }
    for nn in 0..form.n {
        for kk in 0..k {
            put(&cs.lb, form.bt, nn, kk, cs.b[(kk * form.n + nn) as usize]);
        }
    }
    img
}

/// Image bytes per block for these cases.
pub fn image_bytes(form: &Form, cases: &[Case]) -> u32 {
    cases
        .iter()
        .map(|cs| {
            let ra = region_bytes(&cs.la, form.at, 64, form.k());
            ra.max(region_bytes(&cs.lb, form.bt, form.n, form.k()))
        })
        .max()
        .unwrap_or(1024)
}

/// A D-fragment register of thread `t` holding `vals(row, col)`.
fn d_reg(form: &Form, t: u32, j: u32, vals: impl Fn(u32, u32) -> f64) -> u32 {
    if form.f16_acc {
        let h = |v: u32| {
            let (r, c) = frag_pos(t, v, false);
            f16::from_f64(vals(r, c)).to_bits() as u32
        };
        h(2 * j) | h(2 * j + 1) << 16
    } else {
        let (r, c) = frag_pos(t, j, false);
        (vals(r, c) as f32).to_bits()
    }
}

/// Per thread, its D registers: initial C, or the expected result.
pub fn d_frags(form: &Form, vals: impl Fn(u32, u32) -> f64) -> Vec<u32> {
    (0..128).flat_map(|t| (0..form.d_regs()).map(move |j| (t, j))).map(|(t, j)| d_reg(form, t, j, &vals)).collect()
}

/// Per thread, its four A registers.
pub fn a_frags(form: &Form, cs: &Case) -> Vec<u32> {
    let k = form.k();
    let eb = form.at.bytes();
    let per = 4 / eb;
    let mut out = vec![0u32; 128 * 4];
    for t in 0..128u32 {
        for v in 0..4 * per {
            let (r, c) = frag_pos(t, v, eb == 1);
            let bits = form.at.bits(cs.a[(r * k + c) as usize]);
            out[(t * 4 + v / per) as usize] |= bits << (8 * eb * (v % per));
        }
    }
    out
}

/// D = A B (+ C): each product exact in f64, summed in f64, rounded once.
pub fn expected(form: &Form, cs: &Case) -> Vec<f64> {
    let (n, k) = (form.n as usize, form.k() as usize);
    let scale_d = form.imm_scale_d.unwrap_or(cs.scale_d);
    let (sa, sb) = (if form.neg_a { -1.0 } else { 1.0 }, if form.neg_b { -1.0 } else { 1.0 });
    let mut d = vec![0f64; 64 * n];
    for m in 0..64 {
        for nn in 0..n {
            let mut s = if scale_d { cs.c[m * n + nn] } else { 0.0 };
            for kk in 0..k {
                s += sa * cs.a[m * k + kk] * sb * cs.b[kk * n + nn];
            }
            d[m * n + nn] = s;
        }
    }
    d
}

/// Arguments of the shared kernel signature: image, meta (per block: desc A, desc B, scale-d),
/// C fragments, A fragments, output, image bytes per block.
pub struct Launch<'d> {
    pub img: DevBuf<'d>,
    pub meta: DevBuf<'d>,
    pub c: DevBuf<'d>,
    pub a: DevBuf<'d>,
    pub out: DevBuf<'d>,
    pub img_bytes: u32,
    pub blocks: u32,
}

pub fn prepare<'d>(dev: &'d dyn Device, form: &Form, cases: &[Case]) -> Launch<'d> {
    let ib = image_bytes(form, cases);
    let mut img = Vec::new();
    let mut meta = Vec::new();
    let mut c = Vec::new();
    let mut a = Vec::new();
    for cs in cases {
        img.extend(image(form, cs, ib as usize));
        meta.extend([cs.la.desc(), cs.lb.desc(), cs.scale_d as u64, 0]);
        let n = form.n as usize;
        c.extend(d_frags(form, |r, col| cs.c[r as usize * n + col as usize]));
        if form.a_regs {
            a.extend(a_frags(form, cs));
        } else {
            a.extend([0u32; 512]);
        }
    }
    let out = DevBuf::new(dev, c.len() * 4).expect("alloc");
    out.fill(0x7fc1_7fc1).expect("poison");
    Launch {
        img: DevBuf::from_slice(dev, &img).expect("upload"),
        meta: DevBuf::from_slice(dev, &meta).expect("upload"),
        c: DevBuf::from_slice(dev, &c).expect("upload"),
        a: DevBuf::from_slice(dev, &a).expect("upload"),
        out,
        img_bytes: ib,
        blocks: cases.len() as u32,
    }
}

/// Launches `k` over the prepared cases (one block of 128 threads each) and returns its report.
pub fn launch(dev: &dyn Device, k: &KernelRef, l: &Launch) -> LaunchReport {
    let p = |b: &DevBuf| b.addr().to_le_bytes().to_vec();
    let args = [p(&l.img), p(&l.meta), p(&l.c), p(&l.a), p(&l.out), l.img_bytes.to_le_bytes().to_vec()];
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    // The nvcc kernels take the image as dynamic shared memory; the generated ones declare it.
    let cfg = LaunchConfig { grid: [l.blocks, 1, 1], block: [128, 1, 1], dynamic_shared_bytes: l.img_bytes };
    // SAFETY: every buffer is sized for `blocks` blocks of this signature (image bytes per block,
    // 32 bytes of meta, 128 x d_regs C/out words, 128 x 4 A words) and lives until after the
    // launch completes (downloads synchronize).
    let rep = unsafe { dev.launch(k, cfg, &a) }.expect("launch");
    dev.synchronize().expect("synchronize");
    rep
}

/// Output registers, per block, per thread.
pub fn outputs(form: &Form, l: &Launch) -> Vec<u32> {
    l.out.download_vec::<u32>((l.blocks * 128 * form.d_regs()) as usize).expect("download")
}

/// The expected output registers of the cases (bit patterns).
pub fn expected_regs(form: &Form, cases: &[Case]) -> Vec<u32> {
    cases
        .iter()
        .flat_map(|cs| {
            let d = expected(form, cs);
            let n = form.n as usize;
            d_frags(form, move |r, c| d[r as usize * n + c as usize])
        })
        .collect()
}

/// A module of generated PTX the emulator can launch (the test leaks it: one per call).
pub fn ptx_module(tag: &str, ptx: String) -> &'static KernelModule {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("generated_{tag}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    Box::leak(Box::new(KernelModule {
        name: Box::leak(name.into_boxed_str()),
        test_only: true,
        ptx: Box::leak(ptx.into_boxed_str()),
        cubin: &[],
        sass: None,
        entries: &[],
        diagnostics: &[],
    }))
}

pub fn kernel(m: &'static KernelModule, entry: &str) -> KernelRef {
    KernelRef::in_module(m, entry).expect("entry")
}

/// PTX header of generated modules.
pub const PTX_HEADER: &str = ".version 8.7\n.target sm_90a\n.address_size 64\n\n";

/// One entry of the shared signature running `form` once per block.
pub fn entry_ptx(form: &Form, smem_bytes: u32) -> String {
    let name = form.name();
    let nd = form.d_regs();
    let regs: Vec<String> = (0..nd).map(|j| format!("%d{j}")).collect();
    let d = format!("{{{}}}", regs.join(","));
    let a = if form.a_regs { "{%a0,%a1,%a2,%a3}".to_string() } else { "%rd8".to_string() };
    let scale = match form.imm_scale_d {
        Some(v) => (v as u32).to_string(),
        None => "%p1".to_string(),
    };
    let imms = {
        let s = |neg: bool| if neg { "-1" } else { "1" };
        let mut v = vec![s(form.neg_a).to_string(), s(form.neg_b).to_string()];
        if form.at.bytes() == 2 {
            if !form.a_regs {
                v.push((form.tnsp_a as u32).to_string());
            }
            v.push((form.tnsp_b as u32).to_string());
        }
        v.join(", ")
    };
    let dt = if form.f16_acc { "f16" } else { "f32" };
    let mut p = String::new();
    p += &format!(
        ".visible .entry {name}(.param .u64 p_img, .param .u64 p_meta, .param .u64 p_c, .param .u64 p_a, \
         .param .u64 p_out, .param .u32 p_bytes)\n{{\n"
    );
    p += "\t.reg .pred %p<4>;\n\t.reg .b32 %r<32>;\n\t.reg .b64 %rd<32>;\n";
    p += &format!("\t.reg .b32 %d<{nd}>;\n\t.reg .b32 %a<4>;\n");
    p += &format!("\t.shared .align 1024 .b8 sm[{smem_bytes}];\n");
    p += "\tmov.u32 %r0, %tid.x;\n\tmov.u32 %r1, %ctaid.x;\n";
    p += "\tld.param.u64 %rd0, [p_img];\n\tld.param.u32 %r2, [p_bytes];\n";
    p += "\tmul.wide.u32 %rd1, %r1, %r2;\n\tadd.s64 %rd2, %rd0, %rd1;\n";
    p += "\tmov.u32 %r3, sm;\n\tshl.b32 %r4, %r0, 4;\n";
    p += "$Lcopy:\n\tsetp.ge.u32 %p0, %r4, %r2;\n\t@%p0 bra $Ldone;\n";
    p += "\tcvt.u64.u32 %rd3, %r4;\n\tadd.s64 %rd4, %rd2, %rd3;\n";
    p += "\tld.global.v4.u32 {%r5, %r6, %r7, %r8}, [%rd4];\n\tadd.s32 %r9, %r3, %r4;\n";
    p += "\tst.shared.v4.u32 [%r9], {%r5, %r6, %r7, %r8};\n\tadd.s32 %r4, %r4, 2048;\n\tbra $Lcopy;\n";
    // wgmma reads through the async proxy: the generic stores need fence.proxy.async first.
    p += "$Ldone:\n\tfence.proxy.async.shared::cta;\n\tbar.sync 0;\n";
    p += "\tld.param.u64 %rd5, [p_meta];\n\tmul.wide.u32 %rd6, %r1, 32;\n\tadd.s64 %rd7, %rd5, %rd6;\n";
    p += "\tld.global.u64 %rd8, [%rd7];\n\tld.global.u64 %rd9, [%rd7+8];\n\tld.global.u32 %r10, [%rd7+16];\n";
    p += "\tshr.u32 %r11, %r3, 4;\n\tcvt.u64.u32 %rd10, %r11;\n";
    p += "\tadd.s64 %rd8, %rd8, %rd10;\n\tadd.s64 %rd9, %rd9, %rd10;\n\tsetp.ne.u32 %p1, %r10, 0;\n";
    p += "\tmad.lo.s32 %r12, %r1, 128, %r0;\n";
    p += &format!("\tmul.wide.u32 %rd11, %r12, {};\n", 4 * nd);
    p += "\tld.param.u64 %rd12, [p_c];\n\tadd.s64 %rd13, %rd12, %rd11;\n";
    for j in 0..nd {
        p += &format!("\tld.global.b32 %d{j}, [%rd13+{}];\n", 4 * j);
    }
    if form.a_regs {
        p += "\tmul.wide.u32 %rd14, %r12, 16;\n\tld.param.u64 %rd15, [p_a];\n\tadd.s64 %rd16, %rd15, %rd14;\n";
        for j in 0..4 {
            p += &format!("\tld.global.b32 %a{j}, [%rd16+{}];\n", 4 * j);
        }
    }
    p += "\twgmma.fence.sync.aligned;\n";
    p += &format!(
        "\twgmma.mma_async.sync.aligned.m64n{}k{}.{dt}.{}.{} {d}, {a}, %rd9, {scale}, {imms};\n",
        form.n,
        form.k(),
        form.at.ptx(),
        form.bt.ptx()
    );
    p += "\twgmma.commit_group.sync.aligned;\n\twgmma.wait_group.sync.aligned 0;\n";
    p += "\tld.param.u64 %rd17, [p_out];\n\tadd.s64 %rd18, %rd17, %rd11;\n";
    for j in 0..nd {
        p += &format!("\tst.global.b32 [%rd18+{}], %d{j};\n", 4 * j);
    }
    p += "\tret;\n}\n\n";
    p
}

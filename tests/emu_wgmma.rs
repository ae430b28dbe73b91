//! Hopper's tensor-core instructions on the emulator, against an independent host model written
//! from the PTX ISA (tests/wgmma/host.rs): the exhaustive wgmma matrix as PTX generated here
//! (every N, every swizzle of A and B, both majors, every operand type and accumulator, A from
//! shared memory and from registers, scale-d as a predicate and as an immediate, +-1 scales),
//! the sanitizer's wgmma rules on planted bugs and their correct twins (tests/wgmma/hazards.rs),
//! stmatrix and the fp8 conversions (tests/wgmma/convert.rs), and the nvcc-compiled subset of
//! kernels/test/wgmma_units.cu, which the ignored GPU tests also run on a CUDA device
//! (tests/wgmma/gpu.rs).

#[path = "wgmma/cases.rs"]
mod cases;
#[path = "wgmma/convert.rs"]
mod convert;
#[path = "wgmma/gpu.rs"]
mod gpu;
#[path = "wgmma/hazards.rs"]
mod hazards;
#[path = "wgmma/host.rs"]
mod host;

use attnjoule::emu::EmuDevice;
use cases::*;
use host::Elem;

const N_ALL: std::ops::RangeInclusive<u32> = 1..=32;
const SWIZZLES: [u32; 4] = [0, 32, 64, 128];

fn seed() -> u64 {
    let s = attnjoule::reference::fresh_seed();
    println!("seed {s}");
    s
}

#[allow(clippy::too_many_arguments)]
fn form(n: u32, at: Elem, bt: Elem, f16_acc: bool, a_regs: bool, tnsp: (bool, bool), neg: u32) -> Form {
    Form {
        n,
        at,
        bt,
        f16_acc,
        a_regs,
        neg_a: neg & 1 != 0,
        neg_b: neg & 2 != 0,
        tnsp_a: tnsp.0,
        tnsp_b: tnsp.1,
        imm_scale_d: None,
    }
}

/// Runs every form once per block of 8: B's swizzle takes all four values, A's all four across
/// neighbouring forms, scale-d both values; tilings are random per case. Checks the sanitizer is
/// clean, the counters, and every output register (bit for bit when `exact`; otherwise within
/// one f32 rounding of the host's sum, returning the largest relative error seen). Returns the
/// number of wgmma cases run and that error.
fn run_group(tag: &str, forms: &[Form], exact: bool) -> (usize, f64) {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let mut ptx = PTX_HEADER.to_string();
    let mut all = Vec::new();
    for (idx, f) in forms.iter().enumerate() {
        let cases: Vec<Case> =
            (0..8).map(|b| make_case(f, &mut rng, SWIZZLES[(b + idx) % 4], SWIZZLES[b % 4], b >= 4, exact)).collect();
        ptx += &entry_ptx(f, image_bytes(f, &cases));
        all.push(cases);
    }
    let m = ptx_module(tag, ptx);
    let mut worst = 0f64;
    for (f, cases) in forms.iter().zip(&all) {
        let k = kernel(m, &f.name());
        let l = prepare(&dev, f, cases);
        let rep = launch(&dev, &k, &l);
        assert_eq!(rep.findings_total, 0, "{}: {:?}", f.name(), rep.findings);
        let c = rep.counters.expect("counters");
        assert_eq!(c.wgmma_instructions, cases.len() as u64, "{}", f.name());
        assert_eq!(c.tensor_flops, cases.len() as u64 * 2 * 64 * f.n as u64 * f.k() as u64, "{}", f.name());
        let got = outputs(f, &l);
        let want = expected_regs(f, cases);
        let per_block = (128 * f.d_regs()) as usize;
        for (x, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let (b, t, j) = (x / per_block, (x % per_block) / f.d_regs() as usize, x % f.d_regs() as usize);
            let why = || {
                format!(
                    "{} block {b} (layouts A {:?} B {:?}) thread {t} register {j}",
                    f.name(),
                    cases[b].la,
                    cases[b].lb
                )
            };
            if exact || f.f16_acc {
                assert_eq!(g, w, "{}: got {g:#010x}, want {w:#010x}", why());
            } else {
                let (gv, wv) = (f32::from_bits(g) as f64, f32::from_bits(w) as f64);
                let err = (gv - wv).abs() / wv.abs().max(1e-3);
                assert!(err <= 2f64.powi(-23), "{}: got {gv}, want {wv}", why());
                worst = worst.max(err);
            }
        }
    }
    (forms.len() * 8, worst)
}

fn trans_pairs() -> [(bool, bool); 4] {
    [(false, false), (false, true), (true, false), (true, true)]
}

#[test]
fn wgmma_bf16_shared_a_every_n_swizzle_and_major() {
    let forms: Vec<Form> = N_ALL
        .flat_map(|i| {
            trans_pairs()
                .into_iter()
                .enumerate()
                .map(move |(t, tr)| form(8 * i, Elem::Bf16, Elem::Bf16, false, false, tr, i + t as u32))
        })
        .collect();
    let (n, _) = run_group("bf16_ss", &forms, true);
    println!("{n} cases");
}

#[test]
fn wgmma_f16_shared_a_f32_and_f16_accumulators() {
    let forms: Vec<Form> = N_ALL
        .flat_map(|i| {
            let tr = trans_pairs()[(i % 4) as usize];
            let tr2 = trans_pairs()[((i + 1) % 4) as usize];
            [
                form(8 * i, Elem::F16, Elem::F16, false, false, tr, i),
                form(8 * i, Elem::F16, Elem::F16, true, false, tr2, i + 1),
            ]
        })
        .collect();
    let (n, _) = run_group("f16_ss", &forms, true);
    println!("{n} cases");
}

#[test]
fn wgmma_register_a_every_n() {
    let forms: Vec<Form> = N_ALL
        .flat_map(|i| {
            [
                form(8 * i, Elem::Bf16, Elem::Bf16, false, true, (false, false), i),
                form(8 * i, Elem::Bf16, Elem::Bf16, false, true, (false, true), i + 1),
                form(8 * i, Elem::F16, Elem::F16, i % 2 == 0, true, (false, i % 3 == 0), i + 2),
            ]
        })
        .collect();
    let (n, _) = run_group("rs16", &forms, true);
    println!("{n} cases");
}

#[test]
fn wgmma_fp8_every_type_pair_and_n() {
    let types =
        [(Elem::E4m3, Elem::E4m3), (Elem::E4m3, Elem::E5m2), (Elem::E5m2, Elem::E4m3), (Elem::E5m2, Elem::E5m2)];
    let mut forms = Vec::new();
    for i in N_ALL {
        for (t, &(a, b)) in types.iter().enumerate() {
            forms.push(form(8 * i, a, b, false, false, (false, false), i + t as u32));
        }
        let (a, b) = types[(i % 4) as usize];
        forms.push(form(8 * i, a, b, true, false, (false, false), i));
        let (a, b) = types[((i + 1) % 4) as usize];
        forms.push(form(8 * i, a, b, i % 2 == 1, true, (false, false), i + 1));
    }
    let (n, _) = run_group("fp8", &forms, true);
    println!("{n} cases");
}

#[test]
fn wgmma_scale_d_immediate() {
    let mut forms = Vec::new();
    for (x, &n) in [8u32, 64, 136, 256].iter().enumerate() {
        for d in [false, true] {
            let mut f = form(n, Elem::Bf16, Elem::Bf16, false, x % 2 == 1, (false, x >= 2), x as u32);
            f.imm_scale_d = Some(d);
            forms.push(f);
            let mut g = form(n, Elem::E4m3, Elem::E5m2, false, false, (false, false), x as u32);
            g.imm_scale_d = Some(d);
            forms.push(g);
        }
    }
    run_group("imm_d", &forms, true);
}

/// Random (non-integer) operands: the emulator's result is the host's f64 sum rounded once to
/// f32; any tolerance above that would hide a wrong element.
#[test]
fn wgmma_random_data() {
    let mut forms = Vec::new();
    for i in [1u32, 7, 16, 25, 32] {
        forms.push(form(8 * i, Elem::Bf16, Elem::Bf16, false, false, trans_pairs()[(i % 4) as usize], i));
        forms.push(form(8 * i, Elem::F16, Elem::F16, false, true, (false, i % 2 == 0), i));
        forms.push(form(8 * i, Elem::E4m3, Elem::E5m2, false, i % 2 == 0, (false, false), i));
    }
    let (n, worst) = run_group("random", &forms, false);
    println!("{n} cases, largest relative error {worst:.3e}");
}

/// The fp8 tolerance bound kernels must use (see `fp8_error_bound`): DeepSeek-V3's figure of
/// ~2% for K = 4096 lies within it.
#[test]
fn fp8_error_bound_matches_the_published_figure() {
    let b = attnjoule::emu::exec::fp8_error_bound(4096, 1.0);
    assert!((0.015..0.02).contains(&b), "{b}");
    assert_eq!(attnjoule::emu::exec::fp8_error_bound(32, 1.0), 2f64.powi(-13));
}

// ---- on a GPU (tests/wgmma/gpu.rs; scripts/gpu-run.sh runs them as the step test-emu_wgmma) ----

/// Every nvcc wgmma form and swizzle pair: bit for bit on small integers, within the stated
/// bounds on random operands (the largest error is printed).
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_wgmma_matches_the_emulator() {
    gpu::gpu_wgmma_matches_the_emulator();
}

/// The m64n256k16 chain advancing K by 32 bytes inside the 128B swizzle atom.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_wgmma_chain_matches() {
    gpu::gpu_wgmma_chain_matches();
}

/// stmatrix and every fp8 conversion, bit for bit against the emulator.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_stmatrix_and_fp8_conversions_match_the_emulator() {
    gpu::gpu_stmatrix_and_fp8_conversions_match_the_emulator();
}

/// Forms outside what is implemented fail to lower, naming the instruction and its line.
#[test]
fn refused_forms_fail_to_lower() {
    let dev = EmuDevice::new();
    let body = |inst: &str| {
        format!(
            "{PTX_HEADER}.visible .entry k()\n{{\n\t.reg .b32 %r<8>;\n\t.reg .b64 %rd<4>;\n\t.reg .f32 %f<8>;\n\t.reg .b16 %h<2>;\n\
             \t.reg .pred %p<2>;\n\t{inst}\n\tret;\n}}\n"
        )
    };
    let cases = [
        ("cvt.rn.bf16x2.e4m3x2 %r1, %h1;", "bf16x2 forms need sm_100"),
        ("cvt.rn.e4m3x2.f32 %h1, %f1, %f2;", "without .satfinite"),
        ("wgmma.mma_async.sync.aligned.m64n8k8.f32.tf32.tf32 {%f0,%f1,%f2,%f3}, %rd0, %rd1, 1, 1, 1;", "tf32"),
        ("wgmma.mma_async.sp.sync.aligned.m64n8k32.f32.f16.f16 {%f0,%f1,%f2,%f3}, %rd0, %rd1, %r0, 0, 1, 1, 1, 0, 0;", "sparse"),
        ("wgmma.mma_async.sync.aligned.m64n8k16.f16.bf16.bf16 {%r0,%r1}, %rd0, %rd1, 1, 1, 1, 0, 0;", "type combination"),
        ("wgmma.mma_async.sync.aligned.m64n12k16.f32.bf16.bf16 {%f0,%f1,%f2,%f3,%f4,%f5}, %rd0, %rd1, 1, 1, 1, 0, 0;", "multiple of 8"),
        ("wgmma.mma_async.sync.aligned.m64n8k32.f32.e4m3.e4m3 {%f0,%f1,%f2,%f3}, %rd0, %rd1, 1, 1, 1, 1, 0;", "expected 6 operands"),
        ("wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%f0,%f1,%f2,%f3}, %rd0, %rd1, 1, 2, 1, 0, 0;", "imm-scale-a"),
        ("stmatrix.sync.aligned.m16n8.x1.trans.shared.b8 [%r1], {%r2};", "stmatrix shape"),
    ];
    for (inst, what) in cases {
        let m = ptx_module("refused", body(inst));
        let e = dev.kernel(&kernel(m, "k")).expect_err(inst).to_string();
        assert!(e.contains(what) && e.contains("line"), "{inst}: {e}");
    }
}

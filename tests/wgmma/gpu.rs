//! The nvcc-compiled subset (kernels/test/wgmma_units.cu): on the emulator against the host model
//! (these run in CI), and on a CUDA device against the emulator (the `gpu_*` functions, run by
//! the ignored tests of tests/emu_wgmma.rs): bit for bit with small-integer operands (every sum exact, so the accumulation order
//! cannot matter), and within a stated bound on random operands, reporting the largest error.

use super::cases::*;
use super::convert::{check_cvt, check_stmatrix, host_fp8_to_f16};
use super::host::{Elem, Layout};
use attnjoule::device::{DevBuf, Device, LaunchConfig};
use attnjoule::emu::EmuDevice;
use attnjoule::kernels::{self, KernelRef};

const MODULE: &str = "wgmma_units";

/// The wgmma entries of wgmma_units.cu and their forms.
fn nvcc_forms() -> Vec<(&'static str, Form)> {
    let f = |n, at, bt, f16_acc, a_regs, sa: i32, sb: i32, ta, tb| Form {
        n,
        at,
        bt,
        f16_acc,
        a_regs,
        neg_a: sa < 0,
        neg_b: sb < 0,
        tnsp_a: ta,
        tnsp_b: tb,
        imm_scale_d: None,
    };
    use Elem::*;
    vec![
        ("wg_ss_bf16_n64_t00", f(64, Bf16, Bf16, false, false, 1, 1, false, false)),
        ("wg_ss_bf16_n64_t01", f(64, Bf16, Bf16, false, false, -1, 1, false, true)),
        ("wg_ss_bf16_n64_t10", f(64, Bf16, Bf16, false, false, 1, -1, true, false)),
        ("wg_ss_bf16_n64_t11", f(64, Bf16, Bf16, false, false, -1, -1, true, true)),
        ("wg_rs_bf16_n64_t0", f(64, Bf16, Bf16, false, true, 1, 1, false, false)),
        ("wg_rs_bf16_n64_t1", f(64, Bf16, Bf16, false, true, 1, -1, false, true)),
        ("wg_ss_f16_f16acc_n64_t01", f(64, F16, F16, true, false, 1, 1, false, true)),
        ("wg_ss_bf16_n256_t00", f(256, Bf16, Bf16, false, false, 1, 1, false, false)),
        ("wg_ss_bf16_n256_t01", f(256, Bf16, Bf16, false, false, 1, 1, false, true)),
        ("wg_rs_bf16_n256_t1", f(256, Bf16, Bf16, false, true, 1, 1, false, true)),
        ("wg_ss_e4m3_n64", f(64, E4m3, E4m3, false, false, 1, 1, false, false)),
        ("wg_ss_e5m2e4m3_n64", f(64, E5m2, E4m3, false, false, 1, -1, false, false)),
        ("wg_rs_e4m3e5m2_n64", f(64, E4m3, E5m2, false, true, 1, 1, false, false)),
        ("wg_ss_e4m3_n256", f(256, E4m3, E4m3, false, false, 1, 1, false, false)),
    ]
}

const SWIZZLES: [u32; 4] = [0, 32, 64, 128];

/// Per form: one block for each (A swizzle, B swizzle) pair, scale-d alternating.
fn nvcc_cases(form: &Form, rng: &mut Rng, exact: bool) -> Vec<Case> {
    (0..16).map(|b| make_case(form, rng, SWIZZLES[b % 4], SWIZZLES[b / 4], b % 3 != 0, exact)).collect()
}

/// |x - y| over the magnitude the products of its output add up to (plus |C|).
fn abs_sums(form: &Form, cs: &Case) -> Vec<f64> {
    let (n, k) = (form.n as usize, form.k() as usize);
    let mut s = vec![0f64; 64 * n];
    for m in 0..64 {
        for nn in 0..n {
            let c = if cs.scale_d { cs.c[m * n + nn].abs() } else { 0.0 };
            s[m * n + nn] = c + (0..k).map(|kk| (cs.a[m * k + kk] * cs.b[kk * n + nn]).abs()).sum::<f64>();
        }
    }
    s
}

/// The nvcc kernels on the emulator match the host model bit for bit, sanitizer clean.
#[test]
fn nvcc_wgmma_kernels_on_the_emulator() {
    let dev = EmuDevice::new();
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let mut n = 0;
    for (entry, form) in nvcc_forms() {
        let k = KernelRef::new(MODULE, entry).expect("entry");
        let cases = nvcc_cases(&form, &mut rng, true);
        let l = prepare(&dev, &form, &cases);
        let rep = launch(&dev, &k, &l);
        assert_eq!(rep.findings_total, 0, "{entry}: {:?}", rep.findings);
        assert_eq!(rep.counters.expect("counters").wgmma_instructions, cases.len() as u64);
        let (got, want) = (outputs(&form, &l), expected_regs(&form, &cases));
        assert_eq!(got.len(), want.len());
        if let Some(x) = (0..got.len()).find(|&x| got[x] != want[x]) {
            let per = (128 * form.d_regs()) as usize;
            let b = x / per;
            panic!(
                "{entry} block {b} (A {:?}, B {:?}) thread {} register {}: got {:#x}, want {:#x}",
                cases[b].la,
                cases[b].lb,
                (x % per) / form.d_regs() as usize,
                x % form.d_regs() as usize,
                got[x],
                want[x]
            );
        }
        n += cases.len();
    }
    println!("{n} cases");
}

/// A/B tiles of the chain kernel: 64 x 64 and 256 x 64, K-major, 128B swizzle, A at 0, B at 8192.
fn chain_layouts() -> (Layout, Layout) {
    (
        Layout { k_major: true, swizzle: 128, lbo: 16, sbo: 1024, start: 0 },
        Layout { k_major: true, swizzle: 128, lbo: 16, sbo: 1024, start: 8192 },
    )
}

/// Runs the chain kernel (`iters` x 4 m64n256k16 steps per block) on `dev`; returns the output
/// registers, the expected ones (C + iters A B, exact with small integers) and the report.
pub fn run_chain(
    dev: &dyn Device,
    blocks: u32,
    iters: i32,
    seed: u64,
) -> (Vec<u32>, Vec<u32>, attnjoule::device::LaunchReport) {
    let mut rng = Rng(seed);
    let (la, lb) = chain_layouts();
    let img_bytes = 8192 + 32768;
    let mut img = Vec::new();
    let mut meta = Vec::new();
    let mut c = Vec::new();
    let mut want = Vec::new();
    let form = Form {
        n: 256,
        at: Elem::Bf16,
        bt: Elem::Bf16,
        f16_acc: false,
        a_regs: false,
        neg_a: false,
        neg_b: false,
        tnsp_a: false,
        tnsp_b: false,
        imm_scale_d: None,
    };
    for _ in 0..blocks {
        let a: Vec<f64> = (0..64 * 64).map(|_| rng.small()).collect();
        let b: Vec<f64> = (0..64 * 256).map(|_| rng.small()).collect();
        let cv: Vec<f64> = (0..64 * 256).map(|_| rng.small()).collect();
        let mut im = vec![0u8; img_bytes];
        for (l, rows, vals, ld) in [(&la, 64u32, &a, 64usize), (&lb, 256, &b, 256)] {
            for x in 0..rows {
                for y in 0..64u32 {
                    // A is (m, k) row-major; B is (k, n) with row k at k * 256.
                    let v = if ld == 64 { vals[(x * 64 + y) as usize] } else { vals[(y * 256 + x) as usize] };
                    let at = l.addr(Elem::Bf16, x, y) as usize;
                    im[at..at + 2].copy_from_slice(&(Elem::Bf16.bits(v) as u16).to_le_bytes());
                }
            }
        }
        img.extend(im);
        meta.extend([la.desc(), lb.desc(), 1u64, 0]);
        c.extend(d_frags(&form, |r, col| cv[(r * 256 + col) as usize]));
        want.extend(d_frags(&form, |r, col| {
            let ab: f64 = (0..64).map(|kk| a[(r * 64 + kk) as usize] * b[(kk * 256 + col) as usize]).sum();
            cv[(r * 256 + col) as usize] + iters as f64 * ab
        }));
    }
    let ib = DevBuf::from_slice(dev, &img).expect("upload");
    let mb = DevBuf::from_slice(dev, &meta).expect("upload");
    let cb = DevBuf::from_slice(dev, &c).expect("upload");
    let ob = DevBuf::new(dev, c.len() * 4).expect("alloc");
    ob.fill(0x7fc1_7fc1).expect("poison");
    let p = |b: &DevBuf| b.addr().to_le_bytes().to_vec();
    let args = [
        p(&ib),
        p(&mb),
        p(&cb),
        p(&cb),
        p(&ob),
        (img_bytes as u32).to_le_bytes().to_vec(),
        iters.to_le_bytes().to_vec(),
    ];
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let cfg = LaunchConfig { grid: [blocks, 1, 1], block: [128, 1, 1], dynamic_shared_bytes: img_bytes as u32 };
    let k = KernelRef::new(MODULE, "wg_chain_bf16_n256").expect("entry");
    // SAFETY: buffers sized for `blocks` blocks (image, 32 bytes of meta, 128 x 128 C and out
    // words); alive until after the synchronize.
    let rep = unsafe { dev.launch(&k, cfg, &a) }.expect("launch");
    dev.synchronize().expect("sync");
    (ob.download_vec(c.len()).expect("download"), want, rep)
}

#[test]
fn nvcc_wgmma_chain_advances_k_inside_the_swizzle_atom() {
    let dev = EmuDevice::new();
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let (got, want, rep) = run_chain(&dev, 2, 3, seed);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    assert_eq!(rep.counters.expect("counters").wgmma_instructions, 2 * 3 * 4);
    assert_eq!(got, want);
}

#[test]
fn nvcc_stmatrix_and_fp8_conversions_on_the_emulator() {
    let dev = EmuDevice::new();
    let m = kernels::module(MODULE).expect("module");
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    check_stmatrix(&dev, m, seed, &|name, got, want| assert_eq!(got, want, "{name}"));
    check_cvt(&dev, m, seed, &|what, _, got, want| assert_eq!(got, want, "{what}"));
    // The decode direction covers every code: spot-check the table against the format.
    assert_eq!(host_fp8_to_f16(0x7e, super::host::Fp8::E4m3, false), half::f16::from_f32(448.0).to_bits());
}

// ---- on a GPU --------------------------------------------------------------------------------

fn gpu() -> Box<dyn Device> {
    Box::new(attnjoule::device::cuda::CudaDevice::new(0).expect("CUDA device 0"))
}

/// Every nvcc wgmma form, every swizzle pair, both scale-d values: the GPU's D equals the
/// emulator's bit for bit on small integers; on random operands it stays within (K + 1) 2^-23
/// (16-bit types) or the fp8 bound of `fp8_error_bound` of the sum of the products' magnitudes.
pub fn gpu_wgmma_matches_the_emulator() {
    let g = gpu();
    let emu = EmuDevice::new();
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let mut rng = Rng(seed);
    for exact in [true, false] {
        for (entry, form) in nvcc_forms() {
            let k = KernelRef::new(MODULE, entry).expect("entry");
            let cases = nvcc_cases(&form, &mut rng, exact);
            let lg = prepare(g.as_ref(), &form, &cases);
            launch(g.as_ref(), &k, &lg);
            let le = prepare(&emu, &form, &cases);
            launch(&emu, &k, &le);
            let (og, oe) = (outputs(&form, &lg), outputs(&form, &le));
            let per = (128 * form.d_regs()) as usize;
            let mut worst = 0f64;
            for (b, cs) in cases.iter().enumerate() {
                let sums = abs_sums(&form, cs);
                for t in 0..128usize {
                    for j in 0..form.d_regs() as usize {
                        let x = b * per + t * form.d_regs() as usize + j;
                        if exact {
                            assert_eq!(
                                og[x], oe[x],
                                "{entry} block {b} (A {:?}, B {:?}) thread {t} reg {j}",
                                cs.la, cs.lb
                            );
                            continue;
                        }
                        let vals = |w: u32| -> Vec<f64> {
                            if form.f16_acc {
                                vec![
                                    half::f16::from_bits(w as u16).to_f64(),
                                    half::f16::from_bits((w >> 16) as u16).to_f64(),
                                ]
                            } else {
                                vec![f32::from_bits(w) as f64]
                            }
                        };
                        for (h, (gv, ev)) in vals(og[x]).into_iter().zip(vals(oe[x])).enumerate() {
                            let e = if form.f16_acc { 2 * j + h } else { j } as u32;
                            let (r, c) = super::host::frag_pos(t as u32, e, false);
                            let s = sums[r as usize * form.n as usize + c as usize].max(1e-30);
                            let bound = if form.at.bytes() == 1 {
                                attnjoule::emu::exec::fp8_error_bound(form.k() as usize, s)
                            } else if form.f16_acc {
                                (form.k() + 1) as f64 * 2f64.powi(-11) * s
                            } else {
                                (form.k() + 1) as f64 * 2f64.powi(-23) * s
                            };
                            let err = (gv - ev).abs();
                            worst = worst.max(err / s);
                            assert!(
                                err <= bound,
                                "{entry} block {b} thread {t} reg {j}: GPU {gv}, emulator {ev}, bound {bound}"
                            );
                        }
                    }
                }
            }
            if !exact {
                println!("{entry}: random operands, largest |GPU - emulator| / sum |products| = {worst:.3e}");
            }
        }
    }
}

pub fn gpu_wgmma_chain_matches() {
    let g = gpu();
    let seed = attnjoule::reference::fresh_seed();
    let (got, want, _) = run_chain(g.as_ref(), 4, 5, seed);
    assert_eq!(got, want, "GPU chain (seed {seed})");
}

pub fn gpu_stmatrix_and_fp8_conversions_match_the_emulator() {
    let g = gpu();
    let emu = EmuDevice::new();
    let m = kernels::module(MODULE).expect("module");
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    // Run the emulator first and keep its outputs; then compare the GPU's to them.
    let stm = std::sync::Mutex::new(Vec::new());
    check_stmatrix(&emu, m, seed, &|_, got, _| stm.lock().unwrap().push(got.to_vec()));
    let idx = std::sync::atomic::AtomicUsize::new(0);
    check_stmatrix(g.as_ref(), m, seed, &|name, got, want| {
        let e = &stm.lock().unwrap()[idx.fetch_add(1, std::sync::atomic::Ordering::Relaxed)];
        assert_eq!(got, e.as_slice(), "{name}: GPU vs emulator");
        assert_eq!(got, want, "{name}: GPU vs host model");
    });
    let cvt = std::sync::Mutex::new(Vec::new());
    check_cvt(&emu, m, seed, &|_, _, got, _| cvt.lock().unwrap().push(got));
    let idx = std::sync::atomic::AtomicUsize::new(0);
    let mismatches = std::sync::atomic::AtomicUsize::new(0);
    check_cvt(g.as_ref(), m, seed, &|what, _, got, _| {
        let e = cvt.lock().unwrap()[idx.fetch_add(1, std::sync::atomic::Ordering::Relaxed)];
        if got != e && mismatches.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 20 {
            println!("{what}: GPU {got:#x}, emulator {e:#x}");
        }
    });
    let n = mismatches.into_inner();
    assert_eq!(n, 0, "{n} fp8 conversions differ between the GPU and the emulator (first ones printed)");
}

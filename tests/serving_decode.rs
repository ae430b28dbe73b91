//! The serving-decode kernels (kernels/decode_paged.cu, decode_paged_fp8.cu): static checks of the
//! compiled kernels, then ragged batches over paged bf16 and fp8 caches on the emulator against
//! the f64 reference (`paged::reference`, from the dequantized cache), with the sanitizer and
//! the counters held to the bytes the step must move, and the same cases and a bandwidth
//! measurement on a GPU (ignored without one).

mod common;
use common::{cuda_device, emulator, sass_of};

use attnjoule::device::{Device, LaunchReport};
use attnjoule::kernels::module;
use attnjoule::mask::MaskRecipe;
use attnjoule::ops::paged::{PagedAttention, PagedOptions};
use attnjoule::paged::mix::Mix;
use attnjoule::paged::reference::{self as pref, KvPool};
use attnjoule::paged::{fp8, Allocation, KvDtype, PagedBatch, SeqSpec};
use attnjoule::reference::{self, fresh_seed, random_bf16};
use half::bf16;

// ------------------------------------------------------------------------------------------
// Static: what ptxas and the SASS say.

fn split_entries(dtype: &str) -> Vec<String> {
    let mut v = Vec::new();
    for d in [64, 128] {
        for r in ["r16", "r128"] {
            for m in ["none", "causal", "window", "sparse"] {
                v.push(format!("attn_decode_paged_{dtype}_d{d}_{r}_{m}"));
            }
        }
    }
    v
}

#[test]
fn ptxas_no_spills_no_stack() {
    for (name, dtype) in [("decode_paged", "bf16"), ("decode_paged_fp8", "fp8")] {
        let m = module(name).unwrap();
        let mut names: Vec<String> = m.entries.iter().map(|e| e.name.to_string()).collect();
        names.sort_unstable();
        let mut want = split_entries(dtype);
        if dtype == "bf16" {
            want.extend(["attn_decode_paged_combine_d64".into(), "attn_decode_paged_combine_d128".into()]);
        }
        want.sort_unstable();
        assert_eq!(names, want, "{name} entries");
        common::assert_no_stack_or_spills(m.entries);
    }
}

/// The bulk copy (UBLKCP), the mbarrier operations (SYNCS), tensor cores and ldmatrix in every
/// split entry; the fp8 ones also take their scales with cp.async arrivals on the mbarrier.
#[test]
fn sass_bulk_copies_mbarriers_tensor_cores() {
    for (name, dtype) in [("decode_paged", "bf16"), ("decode_paged_fp8", "fp8")] {
        let sass = module(name).unwrap().sass.expect("cuobjdump was not available at build time");
        for entry in split_entries(dtype) {
            let f = sass_of(sass, &entry);
            let mut want = vec![
                "UBLKCP.S.G",
                "SYNCS.ARRIVE.TRANS64",
                "SYNCS.PHASECHK.TRANS64.TRYWAIT",
                "HMMA.16816.F32.BF16",
                "LDSM.16.M88.4",
                "LDSM.16.MT88.4",
            ];
            if dtype == "fp8" {
                want.extend(["ARRIVES.LDGSTSBAR", "LDGSTS.E.ZFILL", "HADD2.F32"]);
            }
            for op in want {
                assert!(f.contains(op), "{entry}: no {op} in its SASS");
            }
            assert!(!f.contains("LDL") && !f.contains("STL"), "{entry}: local memory traffic in SASS");
        }
    }
    let sass = module("decode_paged").unwrap().sass.unwrap();
    for entry in ["attn_decode_paged_combine_d64", "attn_decode_paged_combine_d128"] {
        let f = sass_of(sass, entry);
        assert!(!f.contains("LDL") && !f.contains("STL"), "{entry}: local memory traffic in SASS");
    }
}

// ------------------------------------------------------------------------------------------
// Dynamic: ragged batches against the f64 reference.

struct Case {
    name: &'static str,
    /// (keys, new tokens) per sequence.
    seqs: Vec<(usize, usize)>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    page: usize,
    kv: KvDtype,
    recipe: MaskRecipe,
    alloc: Allocation,
    opts: PagedOptions,
}

#[allow(clippy::too_many_arguments)]
fn case(
    name: &'static str,
    seqs: &[(usize, usize)],
    [heads, kv_heads, head_dim, page]: [usize; 4],
    kv: KvDtype,
    recipe: MaskRecipe,
) -> Case {
    Case {
        name,
        seqs: seqs.to_vec(),
        heads,
        kv_heads,
        head_dim,
        page,
        kv,
        recipe,
        // Tables out of order, a spare page per sequence and unused pages: never read (NaN).
        alloc: Allocation { spare_per_seq: 1, unused_pages: 3, shuffle: Some(fresh_seed()) },
        opts: PagedOptions::default(),
    }
}

/// What one case showed.
struct Observed {
    o_rel_l2: f64,
    lse_max_abs: f64,
    quant: Option<pref::QuantError>,
}

/// Checks the emulator's counters of a whole step against `PagedAttention::traffic`, the bytes
/// the kernels must move (each visible K/V byte once per row chunk by bulk copies, scales, Q per
/// split, partials written and read once, metadata): loads, stores and bulk bytes exactly.
fn check_counters(att: &PagedAttention, reports: &[LaunchReport]) {
    let k: Vec<_> = reports.iter().map(|r| r.counters.as_ref().expect("emulator counters")).collect();
    let load: u64 = k.iter().map(|c| c.global_load_bytes).sum();
    let store: u64 = k.iter().map(|c| c.global_store_bytes).sum();
    let bulk: u64 = k.iter().map(|c| c.bulk_load_bytes).sum();
    let t = att.traffic();
    let w = att.bytes();
    println!(
        "    read {load} B (bulk {bulk} B) + wrote {store} B = {:.4}x PagedBytes::total {} B (K/V {} B, scales {} B, \
         plan adds {} B); expected read {} B (bulk {}), wrote {} B",
        (load + store) as f64 / w.total(),
        w.total(),
        w.kv,
        w.kv_scales,
        w.plan(),
        t.loads,
        t.bulk_loads,
        t.stores
    );
    assert_eq!(bulk, t.bulk_loads, "bulk copies read exactly the visible K/V rows (once per row chunk)");
    assert_eq!(store, t.stores, "O, LSE and the partials written exactly once");
    assert_eq!(load, t.loads, "every byte read is accounted for");
    if att.row_chunks() == 1 {
        assert!((load + store) as f64 <= w.total(), "within PagedBytes::total");
    }
    for (c, (kernel, _)) in k.iter().zip(att.launches().unwrap()) {
        println!(
            "    {}: shared {} requests, {} wavefronts, {} conflicts; ldmatrix {} ({} wavefronts); mbarrier waits {}",
            kernel.entry(),
            c.shared_requests,
            c.shared_wavefronts,
            c.shared_bank_conflicts,
            c.ldmatrix_instructions,
            c.ldmatrix_wavefronts,
            c.mbarrier_waits
        );
        assert_eq!(c.shared_bank_conflicts, 0, "shared-memory bank conflicts");
        assert_eq!(c.ldmatrix_wavefronts, 4 * c.ldmatrix_instructions, "ldmatrix bank conflicts");
    }
}

/// Runs one case on `dev`: fresh inputs, page tails and unused pages NaN, poisoned outputs;
/// compares with the f64 reference of the (dequantized) cache; on the emulator, the sanitizer
/// and the counters.
fn run_case(dev: &dyn Device, c: &Case) -> Observed {
    let seqs: Vec<SeqSpec> = c.seqs.iter().map(|&(keys, new_tokens)| SeqSpec { keys, new_tokens }).collect();
    let b = PagedBatch::allocate(c.heads, c.kv_heads, c.head_dim, c.page, c.kv, &seqs, c.alloc).unwrap();
    let masks = b.masks(&c.recipe).unwrap();
    let opts = PagedOptions { sm_count: c.opts.sm_count.or(Some(dev.sm_count() as usize)), ..c.opts.clone() };
    let att = PagedAttention::new(&b, masks.clone(), &opts).unwrap();
    let seed = fresh_seed();
    let t_in = std::time::Instant::now();
    let q = random_bf16(b.total_q() * b.heads * b.head_dim, seed);
    let k16 = b.random_pool(seed.wrapping_add(1), bf16::NAN);
    let v16 = b.random_pool(seed.wrapping_add(2), bf16::NAN);
    let (quant, k8, v8) = match c.kv {
        KvDtype::Bf16 => (None, None, None),
        KvDtype::Fp8 => {
            let (e, k8, v8) = pref::quantization_error(&b, &masks, &q, &k16, &v16).unwrap();
            (Some(e), Some(k8), Some(v8))
        }
    };
    let (k, v) = match (&k8, &v8) {
        (Some(k8), Some(v8)) => (KvPool::Fp8(k8), KvPool::Fp8(v8)),
        _ => (KvPool::Bf16(&k16), KvPool::Bf16(&v16)),
    };
    let inputs_s = t_in.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let (out, reports) = att.run_once(dev, &q, k, v).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let want = pref::attention(&b, &masks, &q, k, v).unwrap();
    println!("    inputs (and quantization error) {inputs_s:.1}s, reference {:.1}s", t.elapsed().as_secs_f64());
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    let err = reference::rel_l2(&got, &want.o);
    let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
    let inf_rows = want.lse.iter().filter(|x| x.is_infinite()).count();
    let longest = c.seqs.iter().map(|s| s.0).max().unwrap_or(0);
    println!(
        "{:<34} {} seqs (longest {longest}) h{}/{} d{} page {} {} {:<14} seed {seed}: O rel L2 {err:.2e}, LSE max abs \
         {lse_err:.2e}, {inf_rows} rows see no key{}, {secs:.1}s; {}",
        c.name,
        b.num_seqs(),
        c.heads,
        c.kv_heads,
        c.head_dim,
        c.page,
        c.kv,
        c.recipe.to_string(),
        quant.map_or(String::new(), |qe| format!(
            "; quantization alone: O {:.2e}, K {:.2e}, V {:.2e}, LSE {:.2e}",
            qe.o_rel_l2, qe.k_rel_l2, qe.v_rel_l2, qe.lse_max_abs
        )),
        att.description()
    );
    assert!(got.iter().all(|x| x.is_finite()), "{}: non-finite O (unwritten poison or a NaN read) seed {seed}", c.name);
    assert!(out.lse.iter().all(|x| !x.is_nan()), "{}: NaN LSE seed {seed}", c.name);
    assert!(err <= 1e-2, "{}: O rel L2 {err} > 1e-2 (seed {seed})", c.name);
    assert!(lse_err <= 1e-3, "{}: LSE error {lse_err} (seed {seed})", c.name);
    assert!(inf_ok, "{}: rows that see no key must have LSE -inf (seed {seed})", c.name);
    if dev.is_emulator() {
        for r in &reports {
            assert_eq!(r.findings_total, 0, "{}: sanitizer findings {:#?}", c.name, r.findings);
        }
        check_counters(&att, &reports);
    }
    Observed { o_rel_l2: err, lse_max_abs: lse_err, quant }
}

fn run_all(dev: &dyn Device, cases: &[Case]) {
    let mut worst = (0.0f64, 0.0f64);
    for c in cases {
        let o = run_case(dev, c);
        worst = (worst.0.max(o.o_rel_l2), worst.1.max(o.lse_max_abs));
        let _ = o.quant;
    }
    println!("worst O rel L2 {:.2e}, worst LSE abs {:.2e}", worst.0, worst.1);
}

/// Ragged lengths 1..8K mixed, pages partly filled, 1..4 new tokens, GQA 8:1 (r16 and r128).
fn cases_causal(kv: KvDtype) -> Vec<Case> {
    let seqs = [(1, 1), (17, 2), (64, 1), (65, 1), (1000, 2), (4097, 1), (8000, 1), (300, 2)];
    let many = [(1, 4), (17, 2), (65, 3), (1000, 4), (4097, 1), (300, 2)];
    vec![
        case("causal ragged gqa8 d128 p16", &seqs, [8, 1, 128, 16], kv, MaskRecipe::Causal),
        case("causal ragged 4 tokens gqa8 d64 p32", &many, [16, 2, 64, 32], kv, MaskRecipe::Causal),
    ]
}

/// A window with a sequence holding no key (0 splits: the combine writes zeros), odd window
/// starts, 16 new tokens at GQA 1:1 (16 rows: r16), page 64.
fn cases_window(kv: KvDtype) -> Vec<Case> {
    let seqs = [(0, 1), (7, 16), (100, 16), (1001, 3), (5000, 1), (2047, 16)];
    vec![
        case("window 129 with an empty seq 1:1 d64", &seqs, [4, 4, 64, 64], kv, MaskRecipe::Window { keys: 129 }),
        case(
            "window 300 gqa8 d128 p16",
            &[(0, 2), (3000, 1), (999, 2)],
            [8, 1, 128, 16],
            kv,
            MaskRecipe::Window { keys: 300 },
        ),
    ]
}

/// No mask and block-sparse layouts (whole 64- and 128-key blocks), page 256 and 16.
fn cases_none_sparse(kv: KvDtype) -> Vec<Case> {
    let seqs = [(5, 1), (300, 2), (2500, 1), (6000, 1)];
    vec![
        case("none gqa8 d128 p256", &seqs, [8, 1, 128, 256], kv, MaskRecipe::None),
        case(
            "bigbird 64 gqa4 d64 p16",
            &seqs,
            [8, 2, 64, 16],
            kv,
            MaskRecipe::BigBird { block: 64, local: 1, global: 1, random: 2, seed: 7 },
        ),
        case(
            "longformer 128 gqa8 d128 p256",
            &seqs,
            [8, 1, 128, 256],
            kv,
            MaskRecipe::Longformer { block: 128, local: 1, global: 1 },
        ),
    ]
}

/// Forced splits (a 4-SM plan with one-tile splits: many partials per sequence), and 256 rows
/// per KV head (16 tokens x 16 heads: two row chunks).
fn cases_splits_chunks(kv: KvDtype) -> Vec<Case> {
    let mut forced =
        case("causal forced splits gqa8 d64", &[(3000, 2), (700, 1), (129, 3)], [8, 1, 64, 16], kv, MaskRecipe::Causal);
    forced.opts = PagedOptions { sm_count: Some(4), min_tiles_per_split: Some(1) };
    let chunks = case("causal two row chunks d64", &[(200, 16), (90, 3)], [16, 1, 64, 32], kv, MaskRecipe::Causal);
    vec![forced, chunks]
}

#[test]
fn emu_causal_bf16() {
    run_all(emulator().as_ref(), &cases_causal(KvDtype::Bf16));
}

#[test]
fn emu_causal_fp8() {
    run_all(emulator().as_ref(), &cases_causal(KvDtype::Fp8));
}

#[test]
fn emu_window_bf16() {
    run_all(emulator().as_ref(), &cases_window(KvDtype::Bf16));
}

#[test]
fn emu_window_fp8() {
    run_all(emulator().as_ref(), &cases_window(KvDtype::Fp8));
}

#[test]
fn emu_none_and_sparse_bf16() {
    run_all(emulator().as_ref(), &cases_none_sparse(KvDtype::Bf16));
}

#[test]
fn emu_none_and_sparse_fp8() {
    run_all(emulator().as_ref(), &cases_none_sparse(KvDtype::Fp8));
}

#[test]
fn emu_splits_and_row_chunks() {
    let dev = emulator();
    run_all(dev.as_ref(), &cases_splits_chunks(KvDtype::Bf16));
    run_all(dev.as_ref(), &cases_splits_chunks(KvDtype::Fp8));
}

/// Every compiled instance (dtype x head dim x row layout x mask) once, on a small batch: two
/// sequences, a window start inside a page, a 0-key sequence, forced splits (a 2-SM plan).
#[test]
fn emu_every_instance() {
    let dev = emulator();
    let sparse = MaskRecipe::Longformer { block: 64, local: 1, global: 1 };
    for kv in [KvDtype::Bf16, KvDtype::Fp8] {
        for d in [64, 128] {
            // 1 token x 8 heads per KV head: r16; 3 tokens: 24 rows, r128.
            for tokens in [1, 3] {
                for recipe in [MaskRecipe::None, MaskRecipe::Causal, MaskRecipe::Window { keys: 77 }, sparse.clone()] {
                    let mut c = case("instance", &[(300, tokens), (0, 1), (45, 1)], [8, 1, d, 32], kv, recipe);
                    c.opts = PagedOptions { sm_count: Some(2), min_tiles_per_split: Some(2) };
                    run_case(dev.as_ref(), &c);
                }
            }
        }
    }
}

/// A server's step: 64 conversations, log-uniform lengths up to 40K (`mix64:1`), one new token,
/// the model shape (8 query heads on 1 KV head, d 128), causal, page 64.
fn case_mix64(kv: KvDtype) -> Case {
    let seqs: Vec<(usize, usize)> = Mix { count: 64, seed: 1 }.lengths(40_000).into_iter().map(|k| (k, 1)).collect();
    let mut c = case("mix64:1 up to 40K causal", &seqs, [8, 1, 128, 64], kv, MaskRecipe::Causal);
    c.alloc.unused_pages = 0;
    c
}

#[test]
fn emu_mix64_40k() {
    run_case(emulator().as_ref(), &case_mix64(KvDtype::Bf16));
}

#[test]
fn emu_mix64_40k_fp8() {
    run_case(emulator().as_ref(), &case_mix64(KvDtype::Fp8));
}

/// A contiguous cache is the identity table: the paged kernel on `PagedBatch::contiguous` gives
/// the contiguous reference (`reference::attention`, bit-identical to the paged one there).
#[test]
fn emu_contiguous_is_the_identity_table() {
    use attnjoule::{Problem, Shape};
    let shape = Shape::decode(2, 3, 1000, 8, 2, 64);
    let b = PagedBatch::contiguous(&shape, 64, KvDtype::Bf16).unwrap();
    let recipe = MaskRecipe::Causal;
    let problem = Problem::new(shape, recipe.mask(3, 1000).unwrap());
    let seed = fresh_seed();
    let q = random_bf16(shape.q_elems(), seed);
    let k = random_bf16(shape.kv_elems(), seed + 1);
    let v = random_bf16(shape.kv_elems(), seed + 2);
    let (kp, vp) =
        (b.pack_contiguous(&shape, &k, bf16::NAN).unwrap(), b.pack_contiguous(&shape, &v, bf16::NAN).unwrap());
    assert_eq!(b.block_table, (0..b.block_table.len() as i32).collect::<Vec<_>>(), "identity table");
    let att = PagedAttention::with_recipe(&b, &recipe, &PagedOptions::default()).unwrap();
    let dev = emulator();
    let (out, reports) = att.run_once(dev.as_ref(), &q, KvPool::Bf16(&kp), KvPool::Bf16(&vp)).unwrap();
    let want = reference::attention(&problem, &q, &k, &v).unwrap();
    // Q is [batch, seq_q, heads, d] both ways: the rows line up.
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    let err = reference::rel_l2(&got, &want.o);
    println!("contiguous as identity table: O rel L2 {err:.2e} seed {seed}; {}", att.description());
    assert!(err <= 1e-2);
    assert!(reports.iter().all(|r| r.findings_total == 0));
    check_counters(&att, &reports);
}

/// fp8 codes become bf16 exactly: 16 tokens each seeing only its own key (a window of 1), so O is
/// that key's V row (P = 1): every finite e4m3 code appears in the V rows, with power-of-two
/// scales (each value exact in bf16), and O must equal the dequantized values bit for bit.
#[test]
fn emu_every_e4m3_code_exactly() {
    let seqs = [SeqSpec { keys: 16, new_tokens: 16 }];
    let b = PagedBatch::allocate(1, 1, 128, 16, KvDtype::Fp8, &seqs, Allocation::default()).unwrap();
    let masks = b.masks(&MaskRecipe::Window { keys: 1 }).unwrap();
    let codes: Vec<u8> = (0..=255u8).filter(|c| c & 0x7f != 0x7f).collect();
    assert_eq!(codes.len(), 254);
    let seed = fresh_seed();
    let k16 = b.random_pool(seed, bf16::NAN);
    let (k, _) = {
        let b16 = PagedBatch { kv_dtype: KvDtype::Bf16, ..b.clone() };
        (fp8::quantize_pool(&b16, &k16).unwrap(), ())
    };
    let mut v = k.clone();
    for j in 0..16 {
        for i in 0..128 {
            v.codes[j * 128 + i] = codes[(j * 128 + i) % codes.len()];
        }
        v.scales[j] = bf16::from_f32(2f32.powi(j as i32 - 8));
    }
    let q = random_bf16(16 * 128, seed + 1);
    let att = PagedAttention::new(&b, masks.clone(), &PagedOptions::default()).unwrap();
    let (out, reports) = att.run_once(emulator().as_ref(), &q, KvPool::Fp8(&k), KvPool::Fp8(&v)).unwrap();
    let want = pref::attention(&b, &masks, &q, KvPool::Fp8(&k), KvPool::Fp8(&v)).unwrap();
    for (i, (g, w)) in out.o.iter().zip(&want.o).enumerate() {
        assert_eq!(g.to_f64(), *w, "O element {i} (token {}, code {:#04x})", i / 128, v.codes[i]);
    }
    let (lse_err, _) = reference::lse_error(&out.lse, &want.lse);
    println!("every e4m3 code: O exact, LSE max abs {lse_err:.2e} (seed {seed})");
    assert!(lse_err <= 1e-4);
    assert!(reports.iter().all(|r| r.findings_total == 0));
}

/// Inputs that do not fit the step are refused before any launch.
#[test]
fn uploads_are_checked() {
    let seqs = [SeqSpec { keys: 100, new_tokens: 2 }];
    let b = PagedBatch::allocate(4, 2, 64, 16, KvDtype::Bf16, &seqs, Allocation::default()).unwrap();
    let att = PagedAttention::with_recipe(&b, &MaskRecipe::Causal, &PagedOptions::default()).unwrap();
    let dev = emulator();
    let bufs = att.alloc(dev.as_ref(), 1).unwrap();
    let q = random_bf16(2 * 4 * 64, 1);
    let pool = b.random_pool(2, bf16::NAN);
    assert!(att.upload_inputs(&bufs, 0, &q[1..], KvPool::Bf16(&pool), KvPool::Bf16(&pool)).is_err());
    assert!(att.upload_inputs(&bufs, 0, &q, KvPool::Bf16(&pool[1..]), KvPool::Bf16(&pool)).is_err());
    let p8 = fp8::quantize_pool(&b, &pool).unwrap();
    assert!(att.upload_inputs(&bufs, 0, &q, KvPool::Fp8(&p8), KvPool::Fp8(&p8)).is_err(), "dtype");
    assert!(att.upload_inputs(&bufs, 1, &q, KvPool::Bf16(&pool), KvPool::Bf16(&pool)).is_err(), "set");
    let other = PagedAttention::with_recipe(&b, &MaskRecipe::Causal, &PagedOptions::default()).unwrap();
    assert!(other.run(&bufs, 0).is_err(), "buffers of another step");
    assert!(att.upload_inputs(&bufs, 0, &q, KvPool::Bf16(&pool), KvPool::Bf16(&pool)).is_ok());
}

// ------------------------------------------------------------------------------------------
// GPU: the same cases, and the bandwidth of a long step against a device-to-device copy.

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_all_cases() {
    let dev = cuda_device();
    for kv in [KvDtype::Bf16, KvDtype::Fp8] {
        for cases in [cases_causal(kv), cases_window(kv), cases_none_sparse(kv), cases_splits_chunks(kv)] {
            run_all(dev.as_ref(), &cases);
        }
        run_case(dev.as_ref(), &case_mix64(kv));
    }
}

/// 64 sequences of 32K keys (and the mix up to 128K), one new token, the model shape, causal,
/// page 64: the step's bytes (`PagedBytes::total`) per second against a device-to-device copy
/// measured in the same run (docs/perf-decode.md's target: at least 0.9x).
#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_bandwidth_vs_copy() {
    use attnjoule::device::cuda::CudaDevice;
    use attnjoule::device::DevBuf;
    let dev = CudaDevice::new(0).expect("CUDA device 0");
    let sms = dev.sm_count() as usize;
    // The copy: 2 GiB device to device, best of 10 after a warm-up; bytes read + written.
    let n = 1usize << 31;
    let (src, dst) = (DevBuf::new(&dev, n).unwrap(), DevBuf::new(&dev, n).unwrap());
    src.fill(0x3f80_3f80).unwrap();
    let time = |f: &dyn Fn()| {
        f();
        dev.synchronize().unwrap();
        (0..10)
            .map(|_| {
                let a = dev.record().unwrap();
                f();
                let b = dev.record().unwrap();
                dev.elapsed_ms(a, b).unwrap() / 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    let copy_s = time(&|| dev.copy_dtod(&dst, &src, n).unwrap());
    let copy_bw = 2.0 * n as f64 / copy_s;
    println!("device-to-device copy: {:.0} GB/s (read + written)", copy_bw / 1e9);
    let mut worst: f64 = f64::INFINITY;
    for kv in [KvDtype::Bf16, KvDtype::Fp8] {
        for (name, keys) in
            [("64 x 32K", vec![32_768usize; 64]), ("mix64:1 up to 128K", Mix { count: 64, seed: 1 }.lengths(131_072))]
        {
            let seqs: Vec<SeqSpec> = keys.iter().map(|&k| SeqSpec { keys: k, new_tokens: 1 }).collect();
            let b =
                PagedBatch::allocate(8, 1, 128, 64, kv, &seqs, Allocation { shuffle: Some(1), ..Default::default() })
                    .unwrap();
            let opts = PagedOptions { sm_count: Some(sms), ..Default::default() };
            let att = PagedAttention::with_recipe(&b, &MaskRecipe::Causal, &opts).unwrap();
            let bufs = att.alloc(&dev, 1).unwrap();
            let q = random_bf16(b.total_q() * b.heads * b.head_dim, 3);
            let k16 = b.random_pool(4, bf16::ZERO);
            let masks = att.masks().to_vec();
            match kv {
                KvDtype::Bf16 => att.upload_inputs(&bufs, 0, &q, KvPool::Bf16(&k16), KvPool::Bf16(&k16)).unwrap(),
                KvDtype::Fp8 => {
                    let (_, k8, v8) = pref::quantization_error(&b, &masks, &q, &k16, &k16).unwrap();
                    att.upload_inputs(&bufs, 0, &q, KvPool::Fp8(&k8), KvPool::Fp8(&v8)).unwrap()
                }
            }
            att.poison_outputs(&bufs).unwrap();
            let s = time(&|| {
                att.run(&bufs, 0).unwrap();
            });
            let bytes = att.bytes().total();
            let ratio = bytes / s / copy_bw;
            println!(
                "{name} {kv}: {:.1} us, {:.1} MiB, {:.0} GB/s = {ratio:.2}x the copy; {}",
                s * 1e6,
                bytes / (1u64 << 20) as f64,
                bytes / s / 1e9,
                att.description()
            );
            worst = worst.min(ratio);
        }
    }
    println!("lowest fraction of the copy's bandwidth: {worst:.2} (target 0.9)");
}

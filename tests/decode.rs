//! Split-KV decode (kernels/decode.cu): static checks of the compiled kernels, the split
//! heuristic, then every mask on the emulator against the f64 reference with the sanitizer and
//! counters, and the same cases on a GPU (ignored without one).

mod common;
use common::{cuda_device, emulator, sass_of};

use attnjoule::device::{Counters, Device, LaunchReport};
use attnjoule::kernels::module;
use attnjoule::ops::decode::{self, TILE_K};
use attnjoule::ops::{Attention, Options};
use attnjoule::reference::{self, fresh_seed, random_bf16};
use attnjoule::work::{self, Variant};
use attnjoule::{BlockLayout, Mask, Problem, Shape};

// ------------------------------------------------------------------------------------------
// Static: what ptxas and the SASS say, no device needed.

fn split_entries() -> Vec<String> {
    let mut v = Vec::new();
    for d in [64, 128] {
        for r in ["r16", "r128"] {
            for m in ["none", "causal", "window", "sparse"] {
                v.push(format!("attn_decode_d{d}_{r}_{m}"));
            }
        }
    }
    v
}

#[test]
fn ptxas_no_spills_no_stack() {
    let m = module("decode").unwrap();
    let mut names: Vec<String> = m.entries.iter().map(|e| e.name.to_string()).collect();
    names.sort_unstable();
    let mut want = split_entries();
    want.extend(["attn_decode_combine_d64".to_string(), "attn_decode_combine_d128".to_string()]);
    want.sort_unstable();
    assert_eq!(names, want, "decode entries");
    common::assert_no_stack_or_spills(m.entries);
}

#[test]
fn sass_uses_tensor_cores_ldmatrix_and_cp_async() {
    let sass = module("decode").unwrap().sass.expect("cuobjdump was not available at build time");
    for entry in split_entries() {
        let f = sass_of(sass, &entry);
        for op in ["HMMA.16816.F32.BF16", "LDSM.16.M88.4", "LDSM.16.MT88.4", "LDGSTS.E.BYPASS.128"] {
            assert!(f.contains(op), "{entry}: no {op} in its SASS");
        }
        assert!(!f.contains("LDL") && !f.contains("STL"), "{entry}: local memory traffic in SASS");
    }
    for entry in ["attn_decode_combine_d64", "attn_decode_combine_d128"] {
        let f = sass_of(sass, entry);
        assert!(!f.contains("LDL") && !f.contains("STL"), "{entry}: local memory traffic in SASS");
    }
    // The d128 combine reads each split's partial row with one 16-byte load per lane.
    assert!(sass_of(sass, "attn_decode_combine_d128").contains("LDG.E.128"), "combine d128: no 16-byte loads");
}

/// The model-like shape of docs/perf-decode.md: 8 query heads on 1 KV head, head_dim 128, s_q 1.
fn model_shape(cache: usize) -> Shape {
    Shape::decode(1, 1, cache, 8, 1, 128)
}

#[test]
fn split_heuristic_on_132_sms() {
    // One (batch, KV head) holds 8 rows (1 token x 8 heads): the r16 layout, 100 KiB of shared
    // memory and about 200 registers x 128 threads, so 2 CTAs fit an SM and a full wave is
    // 2 x 132 = 264 CTAs. Each split needs at least 4 key tiles (256 keys).
    //   1K:  16 tiles -> at most 16/4 = 4 splits of 4 tiles (the SMs cannot all be fed without
    //        splits of fewer than 256 keys; the whole step is ~0.5 MB).
    //   32K: 512 tiles -> min(264, 512/4 = 128) = 128 splits of 4 tiles (one CTA on 128 SMs).
    //   1M:  16384 tiles -> 264 wanted, ceil(16384/264) = 63 tiles each, so ceil(16384/63) = 261
    //        splits: one wave on 2 x 132 slots with no empty split.
    let mut seen = Vec::new();
    for (cache, want) in [(1024, 4), (32768, 128), (1 << 20, 261)] {
        let p = Problem::new(model_shape(cache), Mask::None);
        let c = decode::config(&p).unwrap();
        assert_eq!(c.ctas_per_sm(), 2, "r16 d128 residency");
        let a = Attention::new(Variant::Decode, &p, &Options { splits: None, sm_count: Some(132) }).unwrap();
        let l = &a.plan().launches[0];
        let splits = l.params.num_splits as usize;
        println!("cache {cache:>8}: {} -> grid {:?}", a.plan().description, l.cfg.grid);
        assert_eq!(splits, want, "cache {cache}");
        assert_eq!(l.cfg.grid, [want as u32, 1, 1]);
        let per_split = l.params.tiles_per_split as usize;
        assert!(per_split * (splits - 1) < cache.div_ceil(TILE_K), "no empty split");
        assert_eq!(a.plan().launches.len(), 2, "more than one split: combine");
        seen.push(splits);
    }
    // A small SM count gets fewer splits at 1M.
    let p = Problem::new(model_shape(1 << 20), Mask::None);
    let a = Attention::new(Variant::Decode, &p, &Options { splits: None, sm_count: Some(16) }).unwrap();
    assert_eq!(a.plan().launches[0].params.num_splits, 32);
    // A batch that alone fills the machine does not split.
    let p = Problem::new(Shape::decode(64, 1, 4096, 64, 8, 128), Mask::None);
    let a = Attention::new(Variant::Decode, &p, &Options { splits: None, sm_count: Some(132) }).unwrap();
    assert_eq!(a.plan().launches[0].params.num_splits, 1);
    assert_eq!(a.plan().launches.len(), 1, "one split: no combine");
    println!("splits at 1K / 32K / 1M: {seen:?}");
}

#[test]
fn window_and_sparse_split_only_what_they_read() {
    // A 4096-key causal window at 1M: keys [1M - 4096, 1M), 64 tiles, so 64 / 4 = 16 splits
    // (not the 261 of the full cache).
    let p = Problem::new(model_shape(1 << 20), Mask::causal_window(4096));
    assert_eq!(decode::visited_tiles(&p), 64);
    let a = Attention::new(Variant::Decode, &p, &Options::default()).unwrap();
    assert_eq!(a.plan().launches[0].params.num_splits, 16, "{}", a.plan().description);
    // One more key is one more tile.
    let p = Problem::new(model_shape(1 << 20), Mask::causal_window(4097));
    assert_eq!(decode::visited_tiles(&p), 65);
    let l = BlockLayout::from_fn(1, 1 << 16, 16, 1024, |_, c| c % 8 == 0);
    let p = Problem::new(model_shape(1 << 16), Mask::BlockSparse(l));
    assert_eq!(decode::visited_tiles(&p), 8 * 16);
}

#[test]
fn unsupported_shapes_are_typed_errors() {
    let o = Options::default();
    let bad = [
        Problem::new(Shape::decode(1, 17, 100, 1, 1, 64), Mask::None),
        Problem::new(Shape::decode(1, 1, 100, 1, 1, 96), Mask::None),
        Problem::new(Shape::decode(1, 4, 256, 1, 1, 64), Mask::BlockSparse(BlockLayout::full(4, 256, 2, 64))),
        Problem::new(Shape::decode(1, 4, 256, 1, 1, 64), Mask::BlockSparse(BlockLayout::full(4, 256, 16, 32))),
    ];
    for p in bad {
        assert!(matches!(Attention::new(Variant::Decode, &p, &o), Err(attnjoule::Error::Invalid(_))), "{p:?}");
    }
    let p = Problem::new(Shape::decode(1, 1, 100, 1, 1, 64), Mask::None);
    let zero = Options { splits: Some(0), sm_count: None };
    assert!(matches!(Attention::new(Variant::Decode, &p, &zero), Err(attnjoule::Error::Invalid(_))));
    // More splits than key tiles (a million: gigabytes of scratch) are refused; as many are not.
    let p = Problem::new(Shape::decode(1, 1, 300, 1, 1, 64), Mask::None);
    let many = |n| Options { splits: Some(n), sm_count: None };
    assert!(Attention::new(Variant::Decode, &p, &many(5)).is_ok());
    let e = Attention::new(Variant::Decode, &p, &many(1_000_000)).unwrap_err().to_string();
    assert!(e.contains("at most the 5 key tiles"), "{e}");
}

// ------------------------------------------------------------------------------------------
// Dynamic: the kernels against the f64 reference.

struct Case {
    name: &'static str,
    shape: Shape,
    mask: Mask,
    /// None: the heuristic.
    splits: Option<usize>,
}

/// `dims`: batch, seq_q (new tokens), cache, heads, kv_heads, head_dim.
fn case(name: &'static str, dims: [usize; 6], mask: Mask, splits: Option<usize>) -> Case {
    let [batch, seq_q, seq_k, heads, kv_heads, head_dim] = dims;
    Case { name, shape: Shape { batch, seq_q, seq_k, heads, kv_heads, head_dim }, mask, splits }
}

/// Checks the counters of a whole call (split kernel + combine) against the minimum traffic.
///
/// `work::decode(p, splits).min_bytes` counts visible K/V once, Q once, O and LSE once, and the
/// f32 partials written and read once. The kernel must read every visible K/V byte (lower
/// bound); besides, every non-empty split re-reads its rows of Q (a CTA cannot attend without
/// them), which the heuristic keeps under 5% of the split's K/V; with a forced split count the
/// allowance is explicit. Total traffic must stay within 1.05x of that.
fn check_counters(p: &Problem, att: &Attention, reports: &[LaunchReport], heuristic: bool) {
    let s = &p.shape;
    let params = &att.plan().launches[0].params;
    let splits = params.num_splits as usize;
    let tiles = decode::visited_tiles(p);
    let per_split = params.tiles_per_split as usize;
    let nonempty = if tiles == 0 { 0 } else { tiles.div_ceil(per_split).min(splits) };
    let k: Vec<&Counters> = reports.iter().map(|r| r.counters.as_ref().expect("emulator counters")).collect();
    let load: u64 = k.iter().map(|c| c.global_load_bytes).sum();
    let store: u64 = k.iter().map(|c| c.global_store_bytes).sum();
    let min = work::decode(p, splits).min_bytes;
    let kv = work::visible_kv_bytes(p);
    let q = (s.q_elems() * 2) as f64;
    let q_extra = q * nonempty.saturating_sub(1) as f64;
    // More than 128 (token, head) rows per KV head: each 128-row chunk streams the K/V again.
    let c = decode::config(p).unwrap();
    let chunks = (s.seq_q * s.group()).div_ceil(c.rows_per_cta());
    let kv_extra = kv * (chunks - 1) as f64;
    // Block-sparse: the shared mask object reads its CSR entries warp-uniformly, one 4-byte load
    // per warp: row_ptr[0..2] and the last column at init, one column per tile for the prefetch
    // and one for the math. Tiny next to a 64-key tile, visible only at cache 1.
    let csr_extra = if matches!(p.mask, Mask::BlockSparse(_)) {
        (s.batch * s.kv_heads * chunks * splits * c.warps_m * c.warps_n * (3 + 2 * per_split) * 4) as f64
    } else {
        0.0
    };
    let ratio = (load + store) as f64 / min;
    println!(
        "    splits {splits} ({nonempty} non-empty, {per_split} tiles each): read {load} B + wrote {store} B = {ratio:.3}x \
         the minimum {min} B (visible K/V {kv} B; Q re-read by {} more splits {q_extra} B; K/V re-read by {} more \
         row chunks {kv_extra} B); mma {}",
        nonempty.saturating_sub(1),
        chunks - 1,
        k[0].mma_instructions
    );
    assert!(load as f64 >= kv, "read less than the visible K/V ({load} < {kv})");
    let partial = if splits > 1 { (splits * s.lse_elems() * (s.head_dim + 1) * 4) as u64 } else { 0 };
    let final_out = (s.q_elems() * 2 + s.lse_elems() * 4) as u64;
    assert_eq!(store, final_out + partial, "O, LSE and each split's partials written exactly once");
    assert!(
        ((load + store) as f64) <= 1.05 * (min + q_extra + kv_extra + csr_extra),
        "traffic {} > 1.05x (minimum {min} + Q re-reads {q_extra} + K/V re-reads {kv_extra} + CSR {csr_extra})",
        load + store
    );
    if heuristic {
        assert!(q_extra <= 0.05 * kv.max(q), "heuristic splits re-read Q for more than 5% of the K/V");
        assert!(
            ((load + store) as f64) <= 1.05 * (min + csr_extra),
            "traffic {ratio:.3}x the minimum with heuristic splits"
        );
    }
    for c in &k {
        println!(
            "    shared: {} requests, {} wavefronts, {} conflicts; ldmatrix {} instr, {} wavefronts",
            c.shared_requests,
            c.shared_wavefronts,
            c.shared_bank_conflicts,
            c.ldmatrix_instructions,
            c.ldmatrix_wavefronts
        );
        assert_eq!(c.shared_bank_conflicts, 0, "shared-memory bank conflicts");
        assert_eq!(c.ldmatrix_wavefronts, 4 * c.ldmatrix_instructions, "ldmatrix bank conflicts");
    }
}

/// Runs one case on `dev`: fresh inputs, poisoned outputs (run_once), compares with the f64
/// reference and, on the emulator, checks the sanitizer and the counters. Returns the O error.
fn run_case(dev: &dyn Device, c: &Case) -> f64 {
    let p = Problem::new(c.shape, c.mask.clone());
    let opts = Options { splits: c.splits, sm_count: Some(dev.sm_count() as usize) };
    let att = Attention::new(Variant::Decode, &p, &opts).unwrap();
    let seed = fresh_seed();
    let s = &c.shape;
    let q = random_bf16(s.q_elems(), seed);
    let k = random_bf16(s.kv_elems(), seed.wrapping_add(1));
    let v = random_bf16(s.kv_elems(), seed.wrapping_add(2));
    let t = std::time::Instant::now();
    let (out, reports) = att.run_once(dev, &q, &k, &v).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let want = reference::attention(&p, &q, &k, &v).unwrap();
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    let err = reference::rel_l2(&got, &want.o);
    let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
    let inf_rows = want.lse.iter().filter(|x| x.is_infinite()).count();
    println!(
        "{:<30} b{} sq{:>2} cache{:>6} h{}/{} d{:>3} {:<12} seed {seed:>20}: O rel L2 {err:.2e}, LSE max abs {lse_err:.2e}, \
         {inf_rows} rows see no key, {secs:.1}s; {}",
        c.name,
        s.batch,
        s.seq_q,
        s.seq_k,
        s.heads,
        s.kv_heads,
        s.head_dim,
        p.mask.name(),
        att.plan().description
    );
    assert!(got.iter().all(|x| x.is_finite()), "{}: non-finite O (unwritten poison?) seed {seed}", c.name);
    assert!(out.lse.iter().all(|x| !x.is_nan()), "{}: NaN LSE (unwritten poison?) seed {seed}", c.name);
    assert!(err <= 1e-2, "{}: O rel L2 {err} > 1e-2 (seed {seed})", c.name);
    assert!(lse_err <= 1e-3, "{}: LSE error {lse_err} (seed {seed})", c.name);
    assert!(inf_ok, "{}: rows that see no key must have LSE -inf (seed {seed})", c.name);
    if dev.is_emulator() {
        for r in &reports {
            assert_eq!(r.findings_total, 0, "{}: sanitizer findings {:#?}", c.name, r.findings);
        }
        check_counters(&p, &att, &reports, c.splits.is_none());
    }
    err
}

fn cases_none() -> Vec<Case> {
    vec![
        case("none cache 1", [1, 1, 1, 1, 1, 64], Mask::None, None),
        // one visited tile over 3 splits: splits 1 and 2 see no key (LSE -inf, ignored)
        case("none 7 empty split", [2, 1, 7, 4, 1, 128], Mask::None, Some(2)),
        // 5 tiles over 4 splits of 2 tiles: the last split is empty.
        case("none 300 one empty split", [2, 1, 300, 4, 1, 128], Mask::None, Some(4)),
        case("none 64 sq4 gqa8", [1, 4, 64, 8, 1, 64], Mask::None, Some(2)),
        case("none 65 sq16 gqa8", [1, 16, 65, 8, 1, 128], Mask::None, None),
        case("none 1000 model", [1, 1, 1000, 8, 1, 128], Mask::None, None),
        case("none 4097 sq4 gqa4 b2", [2, 4, 4097, 4, 1, 64], Mask::None, Some(5)),
        // 256 rows per KV head (16 tokens x 16 heads): two row chunks
        case("none 200 two row chunks", [1, 16, 200, 16, 1, 64], Mask::None, Some(2)),
    ]
}

fn cases_causal() -> Vec<Case> {
    vec![
        // 16 tokens, 7 keys: the first 9 tokens see no key (O = 0, LSE = -inf)
        case("causal sq16 > cache 7", [1, 16, 7, 1, 1, 64], Mask::Causal, Some(1)),
        // split 1 holds key 64 only, which tokens 0..14 do not see: their partial LSE is -inf
        case("causal 65 sq16 gqa4", [1, 16, 65, 4, 1, 128], Mask::Causal, Some(2)),
        case("causal 1000 sq4 gqa4", [1, 4, 1000, 8, 2, 64], Mask::Causal, None),
        case("causal 4097 sq16 gqa1 b2", [2, 16, 4097, 2, 2, 128], Mask::Causal, Some(7)),
        // 32 rows per KV head (r128 layout) with batch 2 and 2 KV heads
        case("causal 300 sq8 gqa4 b2 hk2", [2, 8, 300, 8, 2, 128], Mask::Causal, Some(3)),
    ]
}

fn cases_window() -> Vec<Case> {
    vec![
        case("window 100 @4097", [1, 1, 4097, 8, 1, 128], Mask::causal_window(100), None),
        // keys 952..1000: 2 tiles, so at most 2 splits
        case("window 32/8 @1000 sq16", [1, 16, 1000, 4, 1, 64], Mask::Window { left: 32, right: 8 }, Some(2)),
        case("window 0 @65 sq4", [1, 4, 65, 1, 1, 64], Mask::Window { left: 0, right: 0 }, Some(2)),
        case("window wider than cache", [1, 16, 64, 8, 1, 64], Mask::Window { left: 5000, right: 5000 }, None),
    ]
}

fn cases_sparse(seed: u64) -> Vec<Case> {
    let mut st = seed;
    let random = BlockLayout::from_fn(1, 4097, 16, 128, |_, _| {
        st = st.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        !(st >> 33).is_multiple_of(3)
    });
    let strided = BlockLayout::from_fn(4, 1000, 16, 64, |_, c| c % 4 == 0 || c == 15);
    let empty = BlockLayout::from_csr(16, 65, 16, 64, vec![0, 0], vec![]).unwrap();
    vec![
        case("sparse random 4097", [1, 1, 4097, 8, 1, 128], Mask::BlockSparse(random), None),
        case("sparse strided 1000 b2", [2, 4, 1000, 4, 1, 64], Mask::BlockSparse(strided), Some(3)),
        // no block at all: every row sees no key
        case("sparse empty row", [1, 16, 65, 8, 1, 128], Mask::BlockSparse(empty), Some(2)),
        case("sparse full cache 1", [1, 1, 1, 1, 1, 64], Mask::BlockSparse(BlockLayout::full(1, 1, 16, 64)), None),
    ]
}

/// 32K tokens: the model shape (s_q 1, GQA 8, head_dim 128: the heuristic's 128 splits and the
/// combine), and 4 causal tokens with GQA 4 at head_dim 64 (16 rows, 128 splits of 4 tiles).
fn cases_32k() -> Vec<Case> {
    vec![
        case("none 32K model", [1, 1, 32768, 8, 1, 128], Mask::None, None),
        case("causal 32K sq4 gqa4 d64", [1, 4, 32768, 4, 1, 64], Mask::Causal, None),
    ]
}

fn run_all(dev: &dyn Device, cases: &[Case]) {
    common::run_cases(dev, cases, run_case);
}

#[test]
fn emu_no_mask() {
    run_all(emulator().as_ref(), &cases_none());
}

#[test]
fn emu_causal() {
    run_all(emulator().as_ref(), &cases_causal());
}

#[test]
fn emu_window() {
    run_all(emulator().as_ref(), &cases_window());
}

#[test]
fn emu_block_sparse() {
    let seed = fresh_seed();
    println!("layout seed {seed}");
    run_all(emulator().as_ref(), &cases_sparse(seed));
}

#[test]
fn emu_32k_cache() {
    run_all(emulator().as_ref(), &cases_32k());
}

// ------------------------------------------------------------------------------------------
// GPU: the same cases on the CUDA backend.

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_all_masks() {
    let dev = cuda_device();
    let seed = fresh_seed();
    for cases in [cases_none(), cases_causal(), cases_window(), cases_sparse(seed), cases_32k()] {
        run_all(dev.as_ref(), &cases);
    }
}

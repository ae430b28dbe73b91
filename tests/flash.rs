//! Flash prefill (kernels/flash_prefill.cu): static checks of the compiled kernels, then every mask
//! on the emulator against the f64 reference with the sanitizer and counters, and the same cases on
//! a GPU (ignored without one).

mod common;
use common::{cuda_device, emulator, sass_of};

use attnjoule::device::{Counters, Device, LaunchReport};
use attnjoule::kernels::module;
use attnjoule::mask::TileClass;
use attnjoule::ops::flash::{self, FlashConfig};
use attnjoule::ops::{Attention, Options};
use attnjoule::reference::{self, fresh_seed, random_bf16};
use attnjoule::work::Variant;
use attnjoule::{BlockLayout, Mask, Problem, Shape};

// ------------------------------------------------------------------------------------------
// Static: what ptxas and the SASS say, no device needed.

const ENTRIES: [&str; 8] = [
    "attn_flash_prefill_d64_none",
    "attn_flash_prefill_d64_causal",
    "attn_flash_prefill_d64_window",
    "attn_flash_prefill_d64_sparse",
    "attn_flash_prefill_d128_none",
    "attn_flash_prefill_d128_causal",
    "attn_flash_prefill_d128_window",
    "attn_flash_prefill_d128_sparse",
];

#[test]
fn ptxas_no_spills_no_stack() {
    let m = module("flash_prefill").unwrap();
    let mut names: Vec<&str> = m.entries.iter().map(|e| e.name).collect();
    names.sort_unstable();
    let mut want = ENTRIES.to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "flash_prefill entries");
    common::assert_no_stack_or_spills(m.entries);
    assert!(m.entries.iter().all(|e| e.registers <= 255));
}

#[test]
fn sass_uses_tensor_cores_ldmatrix_and_cp_async() {
    let sass = module("flash_prefill").unwrap().sass.expect("cuobjdump was not available at build time");
    for entry in ENTRIES {
        let f = sass_of(sass, entry);
        for op in ["HMMA.16816.F32.BF16", "LDSM.16.M88.4", "LDSM.16.MT88.4", "LDGSTS"] {
            assert!(f.contains(op), "{entry}: no {op} in its SASS");
        }
        // Nothing goes through local memory (spills or dynamically indexed arrays).
        assert!(!f.contains("LDL") && !f.contains("STL"), "{entry}: local memory traffic in SASS");
    }
}

#[test]
fn every_mask_and_head_dim_plans() {
    let masks =
        [Mask::None, Mask::Causal, Mask::causal_window(32), Mask::BlockSparse(BlockLayout::full(256, 256, 64, 64))];
    for d in [64, 128] {
        for m in &masks {
            let p = Problem::new(Shape::prefill(1, 256, 4, 2, d), m.clone());
            let a = Attention::new(Variant::Flash, &p, &Options::default()).unwrap();
            let l = &a.plan().launches[0];
            let c = flash::config(&p).unwrap();
            assert_eq!(l.cfg.block[0] as usize, c.threads());
            assert_eq!(l.cfg.grid, [256u32.div_ceil(c.tile_q as u32), 4, 1]);
            assert!(l.cfg.dynamic_shared_bytes as usize <= 227 * 1024);
        }
    }
}

#[test]
fn unsupported_layouts_are_typed_errors() {
    let bad = [
        BlockLayout::full(256, 256, 32, 64),  // block_q below the 64-row query tile
        BlockLayout::full(256, 256, 64, 96),  // block_k not whole 64-key tiles
        BlockLayout::full(256, 256, 100, 64), // block_q not a multiple of 64
    ];
    for l in bad {
        let p = Problem::new(Shape::prefill(1, 256, 2, 1, 64), Mask::BlockSparse(l));
        match Attention::new(Variant::Flash, &p, &Options::default()) {
            Err(attnjoule::Error::Invalid(msg)) => assert!(msg.contains("block"), "{msg}"),
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }
    let p = Problem::new(Shape::prefill(1, 256, 2, 1, 96), Mask::None);
    assert!(matches!(Attention::new(Variant::Flash, &p, &Options::default()), Err(attnjoule::Error::Invalid(_))));
}

// ------------------------------------------------------------------------------------------
// Dynamic: the kernels against the f64 reference.

struct Case {
    name: &'static str,
    shape: Shape,
    mask: Mask,
    /// Softmax scale; None: 1/sqrt(head_dim).
    scale: Option<f64>,
}

/// `dims`: batch, seq_q, seq_k, heads, kv_heads, head_dim.
fn case(name: &'static str, dims: [usize; 6], mask: Mask) -> Case {
    let [batch, seq_q, seq_k, heads, kv_heads, head_dim] = dims;
    Case { name, shape: Shape { batch, seq_q, seq_k, heads, kv_heads, head_dim }, mask, scale: None }
}

/// What the tiling must do at least, per launch: (tile visits, global bytes read, bytes written).
/// Reads: Q once for every query tile that visits a key tile, and the in-range rows of K and V of
/// every visited tile, once per (batch, head, query tile). Writes: O and LSE once.
fn tiling_minimum(p: &Problem, c: &FlashConfig) -> (u64, u64, u64) {
    let s = &p.shape;
    let (row_bytes, bh) = ((s.head_dim * 2) as u64, (s.batch * s.heads) as u64);
    let (mut visits, mut read) = (0u64, 0u64);
    for q0 in (0..s.seq_q).step_by(c.tile_q) {
        let q1 = (q0 + c.tile_q).min(s.seq_q);
        let mut tile_visits = 0;
        for k0 in (0..s.seq_k).step_by(c.tile_k) {
            let k1 = (k0 + c.tile_k).min(s.seq_k);
            if p.mask.classify_tile(q0, q1, k0, k1, s.seq_q, s.seq_k) != TileClass::Empty {
                tile_visits += 1;
                read += 2 * (k1 - k0) as u64 * row_bytes;
            }
        }
        if tile_visits > 0 {
            read += (q1 - q0) as u64 * row_bytes;
        }
        visits += tile_visits;
    }
    let written = (s.q_elems() * 2 + s.lse_elems() * 4) as u64;
    (visits * bh, read * bh, written)
}

fn check_counters(p: &Problem, c: &FlashConfig, k: &Counters) {
    let s = &p.shape;
    let (visits, min_read, written) = tiling_minimum(p, c);
    let (partial, full) = p.mask.tile_counts(s.seq_q, s.seq_k, c.tile_q, c.tile_k);
    assert_eq!(visits, (partial + full) * (s.batch * s.heads) as u64, "tiling_minimum disagrees with tile_counts");
    // Every visited tile issues the same mma per warp: visits = mma / (warps * mma per warp-tile).
    let mma_per_tile = (c.warps * c.mma_per_warp_tile()) as u64;
    assert!(k.mma_instructions.is_multiple_of(mma_per_tile), "mma count {} is not whole tiles", k.mma_instructions);
    let measured_visits = k.mma_instructions / mma_per_tile;
    println!(
        "    tiles visited {measured_visits} (mask: {partial} partial + {full} full per head); global read {} B vs \
         tiling minimum {min_read} B ({:.3}x); written {} B (min {written}); ldmatrix {} wavefronts / {} instr; \
         shared bank conflicts {}",
        k.global_load_bytes,
        k.global_load_bytes as f64 / min_read as f64,
        k.global_store_bytes,
        k.ldmatrix_wavefronts,
        k.ldmatrix_instructions,
        k.shared_bank_conflicts
    );
    assert_eq!(measured_visits, visits, "tile visits != mask.tile_counts");
    assert!(k.global_load_bytes >= min_read, "read less than the data ({} < {min_read})", k.global_load_bytes);
    assert!(
        k.global_load_bytes as f64 <= 1.1 * min_read as f64,
        "global reads {} > 1.1x the tiling minimum {min_read}",
        k.global_load_bytes
    );
    assert_eq!(k.global_store_bytes, written, "O and LSE must be written exactly once");
    // Every ldmatrix is .x4: four 8x8 matrices of 8 rows x 16 bytes, one wavefront each when the
    // swizzle spreads the 8 rows over all 32 banks.
    assert_eq!(k.ldmatrix_wavefronts, 4 * k.ldmatrix_instructions, "ldmatrix bank conflicts");
    assert_eq!(k.shared_bank_conflicts, 0, "shared-memory bank conflicts");
    assert_eq!(k.tensor_flops, k.mma_instructions * 2 * 16 * 8 * 16);
}

/// Runs one case on `dev`: fresh inputs, poisoned outputs (run_once), compares with the f64
/// reference, and (on the emulator) checks the sanitizer and the counters. Returns the O error.
fn run_case(dev: &dyn Device, c: &Case) -> f64 {
    let p = Problem { scale: c.scale, ..Problem::new(c.shape, c.mask.clone()) };
    let cfg = flash::config(&p).unwrap();
    let att = Attention::new(Variant::Flash, &p, &Options::default()).unwrap();
    let seed = fresh_seed();
    let s = &c.shape;
    let q = random_bf16(s.q_elems(), seed);
    let k = random_bf16(s.kv_elems(), seed.wrapping_add(1));
    let v = random_bf16(s.kv_elems(), seed.wrapping_add(2));
    let (out, reports) = att.run_once(dev, &q, &k, &v).unwrap();
    let want = reference::attention(&p, &q, &k, &v).unwrap();
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    let err = reference::rel_l2(&got, &want.o);
    let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
    println!(
        "{:<28} b{} sq{:>5} sk{:>5} h{}/{} d{:>3} {:<12} seed {seed:>20}: O rel L2 {err:.2e}, LSE max abs {lse_err:.2e}",
        c.name,
        s.batch,
        s.seq_q,
        s.seq_k,
        s.heads,
        s.kv_heads,
        s.head_dim,
        p.mask.name()
    );
    assert!(got.iter().all(|x| x.is_finite()), "{}: non-finite O (unwritten poison?) seed {seed}", c.name);
    assert!(err <= 1e-2, "{}: O rel L2 {err} > 1e-2 (seed {seed})", c.name);
    // LSE is f32 of values around ln(seq_k): ex2/lg2 approximations and f32 sums stay ~1e-5.
    assert!(lse_err <= 1e-3, "{}: LSE error {lse_err} (seed {seed})", c.name);
    assert!(inf_ok, "{}: rows that see no key must have LSE -inf (seed {seed})", c.name);
    if dev.is_emulator() {
        let r: &LaunchReport = &reports[0];
        assert_eq!(r.findings_total, 0, "{}: sanitizer findings {:#?}", c.name, r.findings);
        check_counters(&p, &cfg, r.counters.as_ref().expect("emulator counters"));
    }
    err
}

fn cases_none() -> Vec<Case> {
    vec![
        case("none 1x1", [1, 1, 1, 1, 1, 64], Mask::None),
        case("none tails gqa2 batch2", [2, 7, 200, 2, 1, 64], Mask::None),
        case("none 65 gqa4", [1, 65, 65, 4, 1, 128], Mask::None),
        case("none 200x513", [1, 200, 513, 2, 2, 128], Mask::None),
        case("none 1024", [1, 1024, 1024, 1, 1, 64], Mask::None),
    ]
}

fn cases_causal() -> Vec<Case> {
    vec![
        case("causal 1x7", [1, 1, 7, 1, 1, 64], Mask::Causal),
        case("causal 64 gqa8", [1, 64, 64, 8, 1, 128], Mask::Causal),
        case("causal 200 batch2 gqa2", [2, 200, 200, 2, 1, 64], Mask::Causal),
        // seq_q > seq_k: the first 448 rows see no key (O = 0, LSE = -inf)
        case("causal 513x65 empty rows", [1, 513, 65, 1, 1, 64], Mask::Causal),
        case("causal 1024", [1, 1024, 1024, 1, 1, 128], Mask::Causal),
    ]
}

fn cases_window() -> Vec<Case> {
    vec![
        case("window 0", [1, 200, 200, 1, 1, 64], Mask::Window { left: 0, right: 0 }),
        case("window causal 16", [1, 513, 513, 2, 1, 128], Mask::causal_window(16)),
        case("window wider than seq", [2, 7, 65, 2, 2, 64], Mask::Window { left: 5000, right: 5000 }),
        case("window 32/8 gqa2", [1, 65, 200, 4, 2, 128], Mask::Window { left: 32, right: 8 }),
        case("window causal 256 @1024", [1, 1024, 1024, 1, 1, 64], Mask::causal_window(256)),
    ]
}

fn cases_sparse(seed: u64) -> Vec<Case> {
    let csr_empty_rows = BlockLayout::from_csr(200, 200, 64, 64, vec![0, 2, 2, 3, 3], vec![0, 2, 1]).unwrap();
    let mut rng_state = seed;
    let wide_k = BlockLayout::from_fn(200, 513, 64, 128, |_, _| {
        rng_state = rng_state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        !(rng_state >> 33).is_multiple_of(3)
    });
    vec![
        case(
            "sparse bigbird 513",
            [1, 513, 513, 2, 1, 64],
            Mask::BlockSparse(BlockLayout::bigbird(513, 513, 64, 1, 1, 2, seed)),
        ),
        case("sparse csr empty rows", [2, 200, 200, 2, 1, 128], Mask::BlockSparse(csr_empty_rows)),
        case("sparse block_k 128", [1, 200, 513, 1, 1, 64], Mask::BlockSparse(wide_k)),
        case(
            "sparse block_q 128",
            [1, 513, 200, 2, 2, 128],
            Mask::BlockSparse(BlockLayout::longformer(513, 200, 128, 0, 1)),
        ),
        case(
            "sparse strided 1024",
            [1, 1024, 1024, 1, 1, 128],
            Mask::BlockSparse(BlockLayout::strided(1024, 1024, 64, 1, 4)),
        ),
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
    // A causal window of 256 at 1024 visits about a quarter of the unmasked tiles.
    let c = flash::config(&Problem::new(Shape::prefill(1, 1024, 1, 1, 64), Mask::None)).unwrap();
    let (p, f) = Mask::causal_window(256).tile_counts(1024, 1024, c.tile_q, c.tile_k);
    let (pn, fnn) = Mask::None.tile_counts(1024, 1024, c.tile_q, c.tile_k);
    let ratio = (p + f) as f64 / (pn + fnn) as f64;
    println!("window 256 @1024 visits {} of {} tiles ({ratio:.2})", p + f, pn + fnn);
    assert!(ratio < 0.35, "window should visit about a quarter of the tiles");
}

#[test]
fn emu_block_sparse() {
    let seed = fresh_seed();
    println!("layout seed {seed}");
    run_all(emulator().as_ref(), &cases_sparse(seed));
}

#[test]
fn emu_batch2_gqa_all_masks_and_scale() {
    // Batch 2 with each GQA ratio and both head dims, one mask each.
    let cases = vec![
        case("batch2 gqa1 d128 none", [2, 65, 65, 1, 1, 128], Mask::None),
        case("batch2 gqa2 d64 causal", [2, 65, 65, 2, 1, 64], Mask::Causal),
        case("batch2 gqa4 d128 window", [2, 65, 65, 4, 1, 128], Mask::causal_window(20)),
        case("batch2 gqa8 d64 sparse", [2, 65, 65, 8, 1, 64], Mask::BlockSparse(BlockLayout::full(65, 65, 64, 64))),
        // A sharper softmax than 1/sqrt(d): the scale travels only through scale_log2.
        Case { scale: Some(0.5), ..case("scale 0.5 causal", [1, 200, 200, 2, 1, 128], Mask::Causal) },
    ];
    run_all(emulator().as_ref(), &cases);
}

// ------------------------------------------------------------------------------------------
// GPU: the same cases on the CUDA backend.

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_all_masks() {
    let dev = cuda_device();
    let seed = fresh_seed();
    for cases in [cases_none(), cases_causal(), cases_window(), cases_sparse(seed)] {
        run_all(dev.as_ref(), &cases);
    }
}

// ------------------------------------------------------------------------------------------
// The mask objects alone (kernels/test/tile_mask_units.cu): the key tiles each query tile visits
// and their full/partial class against Mask::classify_tile, for prefill's and decode's tiles.

fn check_tile_mask(dev: &dyn Device, entry: &str, bm: usize, p: &Problem) {
    use attnjoule::device::{DevBuf, LaunchConfig};
    use attnjoule::kernels::KernelRef;
    let (bn, s) = (64usize, &p.shape);
    let (nq, nk) = (s.seq_q.div_ceil(bm), s.seq_k.div_ceil(bn));
    let max_tiles = nk;
    let stride = 1 + 2 * max_tiles;
    let out = DevBuf::new(dev, 4 * nq * stride).unwrap();
    out.fill(0xffff_ffff).unwrap();
    let (params, _csr) = common::upload_layout(dev, p);
    let args: [Vec<u8>; 3] =
        [params.as_bytes().to_vec(), out.addr().to_le_bytes().to_vec(), (max_tiles as i32).to_le_bytes().to_vec()];
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let cfg = LaunchConfig { grid: [nq as u32, 1, 1], block: [32, 1, 1], dynamic_shared_bytes: 0 };
    let k = KernelRef::new("tile_mask_units", entry).unwrap();
    // SAFETY: (params, out, max_tiles) as the kernel declares them; each of the nq blocks writes
    // its row of `stride` ints of `out` and reads the layout `params` points to, all alive until
    // the download below.
    let r = unsafe { dev.launch(&k, cfg, &a) }.unwrap();
    assert_eq!(r.findings_total, 0, "{entry}: {:#?}", r.findings);
    let got: Vec<i32> = out.download_vec(nq * stride).unwrap();
    for qt in 0..nq {
        let (q0, q1) = (qt * bm, ((qt + 1) * bm).min(s.seq_q));
        let want: Vec<(i32, i32)> = (0..nk)
            .filter_map(|kt| {
                let (k0, k1) = (kt * bn, ((kt + 1) * bn).min(s.seq_k));
                match p.mask.classify_tile(q0, q1, k0, k1, s.seq_q, s.seq_k) {
                    TileClass::Empty => None,
                    c => Some((kt as i32, (c == TileClass::Full && kt * bn + bn <= s.seq_k) as i32)),
                }
            })
            .collect();
        let row = &got[qt * stride..][..stride];
        let n = row[0] as usize;
        let have: Vec<(i32, i32)> = (0..n.min(max_tiles)).map(|i| (row[1 + 2 * i], row[2 + 2 * i])).collect();
        assert_eq!(
            (n, have),
            (want.len(), want.clone()),
            "{entry} {:?} sq {} sk {} q tile {qt}",
            p.mask,
            s.seq_q,
            s.seq_k
        );
    }
}

#[test]
fn emu_tile_masks_visit_the_tiles_of_classify_tile() {
    let dev = emulator();
    let seed = fresh_seed();
    println!("seed {seed}");
    let mut rng = seed | 1;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let lens: [usize; 6] = [1, 7, 64, 65, 200, 513];
    let mut checked = 0;
    for _ in 0..40 {
        let (sq, sk) = (lens[next(lens.len())], lens[next(lens.len())]);
        let shape = Shape::prefill(1, sq, 1, 1, 64);
        let shape = Shape { seq_k: sk, ..shape };
        let windows = [(0, 0), (16, 0), (3, 70), (-1, 5), (300, -1), (5000, 5000)];
        let (l, r) = windows[next(windows.len())];
        let mut sparse = || {
            Mask::BlockSparse(BlockLayout::from_fn(sq, sk, 64 * (1 + next(2)), 64 * (1 + next(2)), |_, _| next(3) == 0))
        };
        let cases: [(&str, usize, Mask); 8] = [
            ("tile_mask_none_m128", 128, Mask::None),
            ("tile_mask_causal_m128", 128, Mask::Causal),
            ("tile_mask_window_m128", 128, Mask::Window { left: l, right: r }),
            ("tile_mask_sparse_m64", 64, sparse()),
            ("tile_mask_none_m16", 16, Mask::None),
            ("tile_mask_causal_m16", 16, Mask::Causal),
            ("tile_mask_window_m16", 16, Mask::Window { left: l, right: r }),
            ("tile_mask_sparse_m16", 16, sparse()),
        ];
        for (entry, bm, mask) in cases {
            check_tile_mask(dev.as_ref(), entry, bm, &Problem::new(shape, mask));
            checked += 1;
        }
    }
    println!("{checked} tile-mask cases, visited tiles and classes equal classify_tile");
}

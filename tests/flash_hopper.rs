//! The Hopper prefill (kernels/flash_hopper_*.cu: variants flash-hopper and flash-hopper-fp8):
//! static checks of the compiled kernels (ptxas, SASS) and of the plans, its mask objects on the
//! emulator (kernels/test/hopper_mask_units.cu: no Hopper instruction in them), and every mask x
//! head dim x input type against the f64 reference on a device, written once over `&dyn Device`:
//! on the CUDA backend (ignored without a GPU) and on the emulator, with the sanitizer on (its
//! async-proxy and wgmma checks included) and the counters held to the algorithm's minimum.

mod common;
use common::{cuda_device, emulator};

use attnjoule::device::{Counters, DevBuf, Device, LaunchConfig, LaunchReport};
use attnjoule::kernels::{self, module, KernelRef};
use attnjoule::mask::TileClass;
use attnjoule::ops::flash_hopper::{self, HopperConfig};
use attnjoule::ops::{Attention, InputFormat, Options};
use attnjoule::reference::{self, fresh_seed, random_bf16};
use attnjoule::work::Variant;
use attnjoule::{BlockLayout, Mask, Problem, Shape};

// ------------------------------------------------------------------------------------------
// Static: what ptxas and the SASS say, and what the plans launch. No device needed.

const MASKS: [&str; 4] = ["none", "causal", "window", "sparse"];

/// (module, entry prefix, input) of every Hopper module.
fn modules() -> Vec<(String, String, InputFormat, usize)> {
    let mut v = Vec::new();
    for (input, tag) in [(InputFormat::Bf16, ""), (InputFormat::E4m3, "fp8_")] {
        for d in [64, 128, 256] {
            v.push((format!("flash_hopper_{tag}d{d}"), format!("attn_flash_hopper_{tag}d{d}"), input, d));
        }
    }
    v
}

/// A problem of each mask for head dim `d` (the mask picks the instance).
fn problem(mask: &str, d: usize) -> Problem {
    let m = match mask {
        "none" => Mask::None,
        "causal" => Mask::Causal,
        "window" => Mask::causal_window(100),
        _ => Mask::BlockSparse(BlockLayout::full(300, 300, 64, 64)),
    };
    Problem::new(Shape { batch: 2, seq_q: 300, seq_k: 300, heads: 8, kv_heads: 1, head_dim: d }, m)
}

#[test]
fn ptxas_every_entry_without_spills_or_stack() {
    for (m, prefix, _, _) in modules() {
        let module = module(&m).unwrap();
        let mut names: Vec<&str> = module.entries.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let mut want: Vec<String> = MASKS.iter().map(|k| format!("{prefix}_{k}")).collect();
        want.sort_unstable();
        assert_eq!(names, want, "{m} entries");
        for e in module.entries {
            println!(
                "{:<36} regs {:>3} (at entry)  stack {}  spill {}/{}",
                e.name, e.registers, e.stack_bytes, e.spill_store_bytes, e.spill_load_bytes
            );
            assert_eq!(e.stack_bytes, 0, "{}: stack frame", e.name);
            assert_eq!(e.spill_store_bytes + e.spill_load_bytes, 0, "{}: spills", e.name);
        }
        assert!(module.diagnostics.is_empty(), "{m}: {:#?}", module.diagnostics);
    }
}

#[test]
fn sass_has_wgmma_tma_stmatrix_and_the_register_budgets() {
    for (m, prefix, input, d) in modules() {
        let module = module(&m).unwrap();
        for mask in MASKS {
            let entry = format!("{prefix}_{mask}");
            let f = module.sass_of(&entry).expect("cuobjdump was not available at build time");
            let c = flash_hopper::config(&problem(mask, d), input).unwrap();
            // S = Q K^T is 64 x BN, O += P V is 64 x d: one warpgroup MMA shape each.
            let (s_op, o_op) = match input {
                InputFormat::Bf16 => {
                    (format!("HGMMA.64x{}x16.F32.BF16", c.tile_k), format!("HGMMA.64x{d}x16.F32.BF16"))
                }
                InputFormat::E4m3 => {
                    (format!("QGMMA.64x{}x32.F32.E4M3.E4M3", c.tile_k), format!("QGMMA.64x{d}x32.F32.E4M3.E4M3"))
                }
            };
            for op in [s_op.as_str(), o_op.as_str(), "UTMALDG.4D", "UTMASTG.4D", "STSM", "WARPGROUP.ARRIVE", "SYNCS"] {
                assert!(f.contains(op), "{entry}: no {op} in its SASS");
            }
            // P V takes A (P) from registers ("D, R.., gdesc"), S = Q K^T from shared memory
            // ("D, gdesc, .."). bf16 P V reads V MN-major (transposed B); e4m3 reads V^T K-major;
            // Q K^T reads both K-major.
            let gmma: Vec<(bool, &str)> = f
                .lines()
                .filter(|l| l.contains("GMMA.64x"))
                .map(|l| (l.split(',').nth(1).is_some_and(|a| a.trim().starts_with('R')), l))
                .collect();
            let tnsp = input == InputFormat::Bf16;
            assert!(gmma.iter().any(|(rs, l)| *rs && l.contains(&o_op)), "{entry}: no register-A {o_op}");
            assert!(gmma.iter().any(|(rs, l)| !*rs && l.contains(&s_op)), "{entry}: no shared-A {s_op}");
            for (rs, l) in &gmma {
                assert_eq!(l.contains(".tnspB"), *rs && tnsp, "{entry}: operand major-ness of {}", l.trim());
                assert!(!l.contains(".tnspA"), "{entry}: Q is K-major");
            }
            assert!(!f.contains("LDL") && !f.contains("STL"), "{entry}: local memory traffic");
            assert!(!f.contains("HMMA.16816"), "{entry}: an mma.sync path in a Hopper kernel");
            let roles = kernels::register_roles(f).unwrap_or_else(|| panic!("{entry}: no setmaxnreg budgets"));
            assert_eq!(roles, c.register_budgets(), "{entry}: setmaxnreg producer/consumer");
        }
    }
}

/// `.maxntid X, Y, Z` of `entry` in a module's PTX.
fn maxntid(ptx: &str, entry: &str) -> u32 {
    let at = ptx.find(&format!(".entry {entry}(")).unwrap();
    let body = &ptx[at..at + ptx[at..].find('{').unwrap()];
    let dims = body.split(".maxntid").nth(1).unwrap().lines().next().unwrap();
    dims.split(',').map(|d| d.trim().parse::<u32>().unwrap()).product()
}

#[test]
fn every_mask_head_dim_and_input_plans_within_the_kernels_bounds() {
    for (_, _, input, d) in modules() {
        let variant = if input == InputFormat::Bf16 { Variant::FlashHopper } else { Variant::FlashHopperFp8 };
        for mask in MASKS {
            let p = problem(mask, d);
            for sms in [None, Some(5)] {
                let att = Attention::new(variant, &p, &Options { sm_count: sms, ..Default::default() }).unwrap();
                let c = flash_hopper::config(&p, input).unwrap();
                let l = &att.plan().launches[0];
                assert_eq!(
                    l.cfg.threads_per_block(),
                    maxntid(l.kernel.ptx(), l.kernel.entry()),
                    "{}",
                    l.kernel.entry()
                );
                assert_eq!(l.cfg.threads_per_block() as usize, c.threads());
                assert_eq!(l.cfg.dynamic_shared_bytes as usize, c.smem_bytes());
                assert!(c.smem_bytes() <= 227 * 1024, "{}: {} bytes", l.kernel.entry(), c.smem_bytes());
                let tiles = flash_hopper::work_tiles(&p, &c);
                assert_eq!(l.cfg.grid, [tiles.min(sms.unwrap_or(132) as u64) as u32, 1, 1]);
                assert_eq!(l.tensor_maps.len(), 4, "Q, K, V, O");
                for m in &l.tensor_maps {
                    let spec = attnjoule::device::TensorMapSpec { addr: 1 << 20, ..m.spec.clone() };
                    spec.validate().unwrap_or_else(|e| panic!("{} {:?}: {e}", l.kernel.entry(), m.operand));
                }
            }
        }
    }
}

#[test]
fn unsupported_shapes_are_typed_errors() {
    let bad_layouts = [BlockLayout::full(256, 256, 32, 64), BlockLayout::full(256, 256, 64, 96)];
    for l in bad_layouts {
        let p = Problem::new(Shape::prefill(1, 256, 2, 1, 128), Mask::BlockSparse(l));
        match Attention::new(Variant::FlashHopper, &p, &Options::default()) {
            Err(attnjoule::Error::Invalid(msg)) => assert!(msg.contains("multiples of 64"), "{msg}"),
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }
    let p = Problem::new(Shape::prefill(1, 256, 2, 1, 96), Mask::None);
    assert!(matches!(
        Attention::new(Variant::FlashHopperFp8, &p, &Options::default()),
        Err(attnjoule::Error::Invalid(_))
    ));
}

// ------------------------------------------------------------------------------------------
// The mask objects on the emulator (no Hopper instruction): the producer's key-tile walk against
// Mask::classify_tile, and each consumer slab's element mask against Mask::visible.

fn kind_name(m: &Mask) -> &'static str {
    match m {
        Mask::None => "none",
        Mask::Causal => "causal",
        Mask::Window { .. } => "window",
        Mask::BlockSparse(_) => "sparse",
    }
}

fn check_walk(dev: &dyn Device, bm: usize, bn: usize, p: &Problem) -> usize {
    let s = &p.shape;
    let (nq, nk) = (s.seq_q.div_ceil(bm), s.seq_k.div_ceil(bn));
    let stride = 1 + nk;
    let out = DevBuf::new(dev, 4 * nq * stride).unwrap();
    out.fill(0xffff_ffff).unwrap();
    let (params, _csr) = common::upload_layout(dev, p);
    let entry = format!("hopper_tiles_{}_m{bm}_n{bn}", kind_name(&p.mask));
    let args: [Vec<u8>; 3] =
        [params.as_bytes().to_vec(), out.addr().to_le_bytes().to_vec(), (nk as i32).to_le_bytes().to_vec()];
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let k = KernelRef::new("hopper_mask_units", &entry).unwrap();
    let cfg = LaunchConfig { grid: [nq as u32, 1, 1], block: [32, 1, 1], dynamic_shared_bytes: 0 };
    // SAFETY: (params, out, max_tiles) as the kernel declares them; block qt writes its row of
    // `stride` ints of `out` and reads the layout `params` points to, all alive until the
    // download below.
    let r = unsafe { dev.launch(&k, cfg, &a) }.unwrap();
    assert_eq!(r.findings_total, 0, "{entry}: {:#?}", r.findings);
    let got: Vec<i32> = out.download_vec(nq * stride).unwrap();
    for qt in 0..nq {
        let (q0, q1) = (qt * bm, ((qt + 1) * bm).min(s.seq_q));
        let want: Vec<i32> = (0..nk)
            .filter(|&kt| {
                let (k0, k1) = (kt * bn, ((kt + 1) * bn).min(s.seq_k));
                p.mask.classify_tile(q0, q1, k0, k1, s.seq_q, s.seq_k) != TileClass::Empty
            })
            .map(|kt| kt as i32)
            .collect();
        let row = &got[qt * stride..][..stride];
        let n = row[0] as usize;
        assert_eq!(
            (n, &row[1..1 + n.min(nk)]),
            (want.len(), &want[..]),
            "{entry} {:?} sq {} sk {} q tile {qt}",
            p.mask,
            s.seq_q,
            s.seq_k
        );
    }
    nq
}

fn check_slabs(dev: &dyn Device, bn: usize, p: &Problem) -> usize {
    let s = &p.shape;
    let (slabs, nk) = (s.seq_q.div_ceil(64), s.seq_k.div_ceil(bn));
    let full = DevBuf::new(dev, 4 * slabs * nk).unwrap();
    let seen = DevBuf::new(dev, slabs * nk * 64 * bn).unwrap();
    full.fill(0xffff_ffff).unwrap();
    seen.fill(0x0505_0505).unwrap();
    let (params, _csr) = common::upload_layout(dev, p);
    let entry = format!("hopper_slab_{}_n{bn}", kind_name(&p.mask));
    let args: [Vec<u8>; 3] =
        [params.as_bytes().to_vec(), full.addr().to_le_bytes().to_vec(), seen.addr().to_le_bytes().to_vec()];
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let k = KernelRef::new("hopper_mask_units", &entry).unwrap();
    let cfg = LaunchConfig { grid: [slabs as u32, nk as u32, 1], block: [128, 1, 1], dynamic_shared_bytes: 0 };
    // SAFETY: (params, full, seen) as declared; block (slab, kt) writes full[slab * nk + kt] and
    // its 64 x bn bytes of `seen`, reads the layout; all alive until the downloads below.
    let r = unsafe { dev.launch(&k, cfg, &a) }.unwrap();
    assert_eq!(r.findings_total, 0, "{entry}: {:#?}", r.findings);
    let full: Vec<i32> = full.download_vec(slabs * nk).unwrap();
    let seen: Vec<u8> = seen.download_vec(slabs * nk * 64 * bn).unwrap();
    for slab in 0..slabs {
        for kt in 0..nk {
            let at = slab * nk + kt;
            let mut all_visible = kt * bn + bn <= s.seq_k;
            for r in 0..64 {
                let i = 64 * slab + r;
                for c in 0..bn {
                    let j = kt * bn + c;
                    let got = seen[(at * 64 + r) * bn + c];
                    assert!(got <= 1, "{entry}: unwritten score at slab {slab} tile {kt} row {r} key {c}");
                    if i >= s.seq_q {
                        continue; // rows past seq_q are neither stored nor checked
                    }
                    let want = j < s.seq_k && p.mask.visible(i, j, s.seq_q, s.seq_k);
                    all_visible &= want;
                    assert_eq!(got == 1, want, "{entry} {:?}: slab {slab} tile {kt} query {i} key {j}", p.mask);
                }
            }
            if 64 * slab < s.seq_q {
                // Fully visible exactly when every key of every valid row is (no needless masking,
                // and never a skipped mask).
                assert_eq!(full[at] == 1, all_visible, "{entry} {:?}: slab {slab} tile {kt} full flag", p.mask);
            }
        }
    }
    slabs * nk
}

#[test]
fn emu_hopper_mask_objects_walk_and_mask_like_the_host() {
    let dev = emulator();
    let seed = fresh_seed();
    println!("seed {seed}");
    let mut rng = common::Rng(seed);
    let lens: [usize; 7] = [1, 7, 64, 65, 200, 300, 513];
    let (mut walks, mut slabs) = (0, 0);
    for _ in 0..12 {
        let sq = lens[rng.range(0, lens.len() as i64) as usize];
        let sk = lens[rng.range(0, lens.len() as i64) as usize];
        let shape = Shape { batch: 1, seq_q: sq, seq_k: sk, heads: 1, kv_heads: 1, head_dim: 128 };
        let windows = [(0, 0), (16, 0), (3, 70), (-1, 5), (300, -1), (5000, 5000)];
        let (l, r) = windows[rng.range(0, windows.len() as i64) as usize];
        let (bq, bk) = (64 * rng.range(1, 3) as usize, 64 * rng.range(1, 4) as usize);
        let density = rng.range(2, 5);
        let sparse = Mask::BlockSparse(BlockLayout::from_fn(sq, sk, bq, bk, |_, _| rng.range(0, density) == 0));
        for mask in [Mask::None, Mask::Causal, Mask::Window { left: l, right: r }, sparse] {
            let p = Problem::new(shape, mask);
            for (bm, bn) in [(192, 128), (128, 176), (128, 128), (128, 80)] {
                walks += check_walk(dev.as_ref(), bm, bn, &p);
            }
            for bn in [176, 128, 80] {
                slabs += check_slabs(dev.as_ref(), bn, &p);
            }
        }
    }
    println!("{walks} query tiles walked, {slabs} (slab, key tile) masks checked element by element");
}

// ------------------------------------------------------------------------------------------
// Dynamic: the kernels against the f64 reference, on any device.

struct Case {
    name: &'static str,
    shape: Shape,
    mask: Mask,
    /// Persistent CTAs (None: the device's SMs); fewer than work tiles make each CTA loop.
    sms: Option<usize>,
}

/// `dims`: batch, seq_q, seq_k, heads, kv_heads (head_dim is the run's).
fn case(name: &'static str, dims: [usize; 5], mask: Mask) -> Case {
    let [batch, seq_q, seq_k, heads, kv_heads] = dims;
    Case { name, shape: Shape { batch, seq_q, seq_k, heads, kv_heads, head_dim: 0 }, mask, sms: None }
}

/// Every mask with tails (lengths not multiples of any tile), seq_q != seq_k both ways, GQA 8:1
/// and 1:1, batch 2, rows that see no key, and CTAs looping over several work tiles.
fn cases(seed: u64) -> Vec<Case> {
    let mut rng = common::Rng(seed);
    let random = BlockLayout::from_fn(200, 513, 64, 192, |_, _| rng.range(0, 3) != 0);
    let empty_rows = BlockLayout::from_csr(200, 200, 64, 64, vec![0, 2, 2, 3, 3], vec![0, 2, 1]).unwrap();
    vec![
        case("none 1x1", [1, 1, 1, 1, 1], Mask::None),
        case("none tails gqa8 batch2", [2, 7, 200, 8, 1], Mask::None),
        Case { sms: Some(3), ..case("none 200x513 gqa1 3 CTAs", [1, 200, 513, 2, 2], Mask::None) },
        case("causal 513x65 empty rows", [1, 513, 65, 1, 1], Mask::Causal),
        Case { sms: Some(2), ..case("causal 300 gqa8 batch2 2 CTAs", [2, 300, 300, 8, 1], Mask::Causal) },
        case("causal 65x200 gqa1", [1, 65, 200, 2, 2], Mask::Causal),
        case("window causal 16", [1, 513, 513, 2, 1], Mask::causal_window(16)),
        case("window 32/8 gqa2", [1, 65, 200, 4, 2], Mask::Window { left: 32, right: 8 }),
        case("window wider than seq", [2, 7, 65, 2, 2], Mask::Window { left: 5000, right: 5000 }),
        case(
            "sparse bigbird 513",
            [1, 513, 513, 2, 1],
            Mask::BlockSparse(BlockLayout::bigbird(513, 513, 64, 1, 1, 2, seed)),
        ),
        case("sparse csr empty rows", [2, 200, 200, 2, 1], Mask::BlockSparse(empty_rows)),
        Case {
            sms: Some(4),
            ..case(
                "sparse block_q 128 4 CTAs",
                [1, 513, 200, 2, 2],
                Mask::BlockSparse(BlockLayout::longformer(513, 200, 128, 0, 1)),
            )
        },
        case("sparse block_k 192 gqa8", [1, 200, 513, 8, 1], Mask::BlockSparse(random)),
    ]
}

/// What the tiling must do at least: tile visits, global bytes read, bytes written. Reads: Q's
/// in-range rows once per work tile that visits a key tile, the in-range rows of K and V (V^T: its
/// padded key columns) of every visited key tile, once per work tile. Writes: O and LSE once.
fn tiling_minimum(p: &Problem, c: &HopperConfig) -> (u64, u64, u64) {
    let s = &p.shape;
    let eb = if c.input == InputFormat::Bf16 { 2 } else { 1 };
    let row = (s.head_dim * eb) as u64;
    let kp = attnjoule::ops::fp8::keys_padded(s.seq_k);
    let (mut visits, mut read) = (0u64, 0u64);
    for q0 in (0..s.seq_q).step_by(c.tile_q) {
        let q1 = (q0 + c.tile_q).min(s.seq_q);
        let mut n = 0;
        for k0 in (0..s.seq_k).step_by(c.tile_k) {
            let k1 = (k0 + c.tile_k).min(s.seq_k);
            if p.mask.classify_tile(q0, q1, k0, k1, s.seq_q, s.seq_k) != TileClass::Empty {
                n += 1;
                let v_keys = if c.input == InputFormat::Bf16 { k1 - k0 } else { (k0 + c.tile_k).min(kp) - k0 };
                read += (k1 - k0) as u64 * row + (v_keys * s.head_dim * eb) as u64;
            }
        }
        if n > 0 {
            read += (q1 - q0) as u64 * row;
        }
        visits += n;
    }
    let bh = (s.batch * s.heads) as u64;
    (visits * bh, read * bh, (s.q_elems() * 2 + s.lse_elems() * 4) as u64)
}

/// Counters of an emulated run against the algorithm's minimum (docs/perf-hopper.md, "Counters
/// against the minimum"):
/// - TMA reads are exactly the tiling minimum: every visited tile's in-range rows once per work
///   tile (out-of-range rows of a box are zero-filled, not read), nothing else through the TMA;
/// - plain global reads are metadata only: nothing for bf16 without a layout, the three fp8
///   descales per consumer thread and work tile (uniform loads: one sector per warp), and for
///   block-sparse layouts the CSR, which must stay below 10% of the TMA bytes;
/// - wgmma: per visited tile, each consumer warpgroup issues D * elem / 32 QK^T k-steps and
///   tile_k / k PV k-steps, so the tensor FLOPs equal the visited tiles' (Mask::tile_counts);
/// - O leaves by TMA stores exactly once (in-range rows), the LSE by plain stores exactly once;
/// - shared memory: no bank conflicts (stmatrix into swizzled rows; everything else is TMA and
///   wgmma descriptors).
fn check_counters(p: &Problem, c: &HopperConfig, k: &Counters) {
    let s = &p.shape;
    let (visits, min_read, written) = tiling_minimum(p, c);
    let (partial, full) = p.mask.tile_counts(s.seq_q, s.seq_k, c.tile_q, c.tile_k);
    assert_eq!(visits, (partial + full) * (s.batch * s.heads) as u64, "tiling_minimum disagrees with tile_counts");
    let eb = if c.input == InputFormat::Bf16 { 2 } else { 1 };
    let keys_per_step = if c.input == InputFormat::Bf16 { 16 } else { 32 };
    let wgmma_per_visit = (c.consumers() * (s.head_dim * eb / 32 + c.tile_k / keys_per_step)) as u64;
    let work_tiles = (s.seq_q.div_ceil(c.tile_q) * s.heads * s.batch) as u64;
    let descales = if c.input == InputFormat::E4m3 { 12 * 128 * c.consumers() as u64 * work_tiles } else { 0 };
    let plain_read = k.global_load_bytes - k.tma_load_bytes;
    println!(
        "    tiles visited {visits}: wgmma {} (want {}), tensor FLOPs {}; TMA read {} B (minimum {min_read} B, {:.3}x), \
         plain read {plain_read} B (descales {descales} B); written {} B (TMA {}; want {written}); \
         bank conflicts {}",
        k.wgmma_instructions,
        visits * wgmma_per_visit,
        k.tensor_flops,
        k.tma_load_bytes,
        k.tma_load_bytes as f64 / min_read.max(1) as f64,
        k.global_store_bytes,
        k.tma_store_bytes,
        k.shared_bank_conflicts
    );
    assert_eq!(k.wgmma_instructions, visits * wgmma_per_visit, "wgmma count != visited tiles");
    assert_eq!(k.tensor_flops, visits * c.flops_per_tile(), "wgmma FLOPs != visited tiles");
    assert_eq!(k.tma_load_bytes, min_read, "TMA reads != each visited tile once");
    if matches!(p.mask, Mask::BlockSparse(_)) {
        assert!(plain_read > descales, "a block-sparse walk reads its CSR");
        assert!((plain_read - descales) as f64 <= 0.1 * min_read as f64, "CSR reads above 10% of the tiles'");
    } else {
        assert_eq!(plain_read, descales, "plain reads other than the descales");
    }
    assert_eq!(k.tma_store_bytes, (s.q_elems() * 2) as u64, "O stored once by the TMA");
    assert_eq!(k.global_store_bytes, written, "O and LSE written exactly once");
    assert_eq!(k.shared_bank_conflicts, 0, "shared-memory bank conflicts");
}

/// The e4m3 run's worst-case error budget, per output element (docs/perf-hopper.md, "fp8
/// numerics"). With u = 2^-13 (wgmma's e4m3 accumulation keeps about 14 bits: DeepSeek-V3
/// report, section 3.3.2), the kernel's O differs from the f64 reference of the same e4m3 values
/// by at most
///   (E (1 + 2^-4)(1 + g) - 1) M + E (1 + g) N + 2^-8 |O|   (+ f32 slack)
/// - E = exp(2 sigma): how far score errors sigma = scale d u max_j sum_k |q_k k_jk| (d
///   accumulations per score) can move a normalized probability;
/// - 2^-4: e4m3's relative rounding of P (normal range), N = sum_j min(p_j, 2^-10) |v_j| its
///   absolute rounding below the normal range (P is relative to the running max, <= 1);
/// - g = n u: the P V accumulation over the n keys of the visited tiles;
/// - M = sum_j p_j |v_j|; 2^-8: the bf16 output.
///
/// Returns (elements over the bound, worst error / bound).
fn fp8_bound_violations(
    p: &Problem,
    f: &attnjoule::ops::fp8::Fp8Inputs,
    got: &[f64],
    want: &[f64],
    mags: &reference::Magnitudes,
) -> (usize, f64) {
    let s = &p.shape;
    let (d, u) = (s.head_dim, f64::powi(2.0, -13));
    let g = (s.seq_k + 256) as f64 * u; // keys of the visited tiles: at most seq_k rounded up to a tile
    let (mut bad, mut worst) = (0, 0f64);
    for b in 0..s.batch {
        for i in 0..s.seq_q {
            for h in 0..s.heads {
                let hk = h / s.group();
                let q = &f.q_values[s.q_index(b, i, h)..][..d];
                // The largest sum_k |q_k k_jk| over the keys (visible or not: an upper bound).
                let sum_qk = (0..s.seq_k)
                    .map(|j| {
                        q.iter().zip(&f.k_values[s.kv_index(b, j, hk)..][..d]).map(|(a, c)| (a * c).abs()).sum::<f64>()
                    })
                    .fold(0.0, f64::max);
                // (1 + 1e-5): f32 scale folding, ex2.approx, the f32 row sum.
                let e = (2.0 * p.scale() * d as f64 * u * sum_qk).exp() * (1.0 + 1e-5);
                let at = s.q_index(b, i, h);
                for x in at..at + d {
                    let bound = (e * (1.0 + 0.0625) * (1.0 + g) - 1.0) * mags.m[x]
                        + e * (1.0 + g) * mags.small[x]
                        + f64::powi(2.0, -8) * want[x].abs()
                        + 1e-7;
                    let err = (got[x] - want[x]).abs();
                    worst = worst.max(err / bound);
                    bad += (err > bound) as usize;
                }
            }
        }
    }
    (bad, worst)
}

/// Runs one case: fresh inputs, poisoned outputs, the reference (of the e4m3 values for fp8),
/// and on the emulator the sanitizer and the counters. Returns the O rel L2 error.
fn run_case(dev: &dyn Device, c: &Case, d: usize, input: InputFormat) -> f64 {
    let shape = Shape { head_dim: d, ..c.shape };
    let p = Problem::new(shape, c.mask.clone());
    let variant = if input == InputFormat::Bf16 { Variant::FlashHopper } else { Variant::FlashHopperFp8 };
    let cfg = flash_hopper::config(&p, input).unwrap();
    let att = Attention::new(
        variant,
        &p,
        &Options { sm_count: c.sms.or(Some(dev.sm_count() as usize)), ..Default::default() },
    )
    .unwrap();
    let seed = fresh_seed();
    let q = random_bf16(shape.q_elems(), seed);
    let k = random_bf16(shape.kv_elems(), seed.wrapping_add(1));
    let v = random_bf16(shape.kv_elems(), seed.wrapping_add(2));
    let (out, reports) = att.run_once(dev, &q, &k, &v).unwrap();
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    assert!(got.iter().all(|x| x.is_finite()), "{}: non-finite O (unwritten poison?) seed {seed}", c.name);
    let (err, lse_err, inf_ok) = match input {
        InputFormat::Bf16 => {
            let want = reference::attention(&p, &q, &k, &v).unwrap();
            let err = reference::rel_l2(&got, &want.o);
            let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
            assert!(err <= 1e-2, "{}: O rel L2 {err} > 1e-2 (seed {seed})", c.name);
            assert!(lse_err <= 1e-3, "{}: LSE error {lse_err} (seed {seed})", c.name);
            (err, lse_err, inf_ok)
        }
        InputFormat::E4m3 => {
            let f = attnjoule::ops::fp8::quantize(&shape, &q, &k, &v);
            let (want, mags) = reference::attention_f64_with_magnitudes(
                &p,
                &f.q_values,
                &f.k_values,
                &f.v_values,
                f64::powi(2.0, -10),
            )
            .unwrap();
            let err = reference::rel_l2(&got, &want.o);
            let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
            let (bad, worst) = fp8_bound_violations(&p, &f, &got, &want.o, &mags);
            println!("    fp8: worst error / element bound {worst:.3}");
            assert_eq!(bad, 0, "{}: {bad} elements beyond the e4m3 error bound (seed {seed})", c.name);
            // P in e4m3 alone gives about 2.5% (its rounding, averaged over the keys of each
            // output); the bound above is per element and loose. 5e-2 = twice that.
            assert!(err <= 5e-2, "{}: O rel L2 {err} > 5e-2 (seed {seed})", c.name);
            // The LSE uses the f32 sums of unrounded P: only the score accumulation moves it.
            assert!(lse_err <= 1e-2, "{}: LSE error {lse_err} (seed {seed})", c.name);
            (err, lse_err, inf_ok)
        }
    };
    println!(
        "{:<32} {:?} d{d:<3} b{} sq{:>4} sk{:>4} h{}/{} seed {seed:>20}: O rel L2 {err:.2e}, LSE max abs {lse_err:.2e} [{}]",
        c.name,
        input,
        shape.batch,
        shape.seq_q,
        shape.seq_k,
        shape.heads,
        shape.kv_heads,
        att.plan().description
    );
    assert!(inf_ok, "{}: rows that see no key must have LSE -inf (seed {seed})", c.name);
    if dev.is_emulator() {
        let r: &LaunchReport = &reports[0];
        assert_eq!(r.findings_total, 0, "{}: sanitizer findings {:#?}", c.name, r.findings);
        check_counters(&p, &cfg, r.counters.as_ref().expect("emulator counters"));
    }
    err
}

fn run_all(dev: &dyn Device, inputs: &[InputFormat], dims: &[usize]) {
    let seed = fresh_seed();
    println!("layout seed {seed}");
    let mut worst = 0f64;
    for &input in inputs {
        for &d in dims {
            for c in cases(seed) {
                worst = worst.max(run_case(dev, &c, d, input));
            }
        }
    }
    println!("worst O rel L2: {worst:.2e}");
}

// The emulator runs: the CPU proof (about 15 s in all at opt-level 3).

#[test]
fn emu_bf16_d64() {
    run_all(emulator().as_ref(), &[InputFormat::Bf16], &[64]);
}

#[test]
fn emu_bf16_d128() {
    run_all(emulator().as_ref(), &[InputFormat::Bf16], &[128]);
}

#[test]
fn emu_bf16_d256() {
    run_all(emulator().as_ref(), &[InputFormat::Bf16], &[256]);
}

#[test]
fn emu_fp8_every_head_dim() {
    run_all(emulator().as_ref(), &[InputFormat::E4m3], &[64, 128, 256]);
}

// GPU: the same cases on the CUDA backend.

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_bf16_every_head_dim() {
    run_all(cuda_device().as_ref(), &[InputFormat::Bf16], &[64, 128, 256]);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_fp8_every_head_dim() {
    run_all(cuda_device().as_ref(), &[InputFormat::E4m3], &[64, 128, 256]);
}

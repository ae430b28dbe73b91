//! Nsight-style counters of small hand-written kernels (kernels/test/emu_units.cu) equal numbers
//! worked out by hand, and the dense kernels' global traffic equals the formula for their tiling.

mod common;
use attnjoule::emu::EmuDevice;
use attnjoule::ops::{Attention, Options};
use attnjoule::problem::{Problem, Shape};
use attnjoule::reference;
use attnjoule::work::Variant;
use attnjoule::Mask;
use common::*;

#[test]
fn coalesced_copy() {
    let dev = EmuDevice::new();
    let n = 1000; // 31 full warps and one warp of 8 active lanes
    let (ib, ob) = (buf(&dev, &vec![1.5f32; n]), out(&dev, 4 * n));
    let rep = launch(&dev, "emu_units", "copy_coalesced", [4, 1, 1], [256, 1, 1], &[ptr(&ib), ptr(&ob), int(n as i32)]);
    let c = rep.counters.expect("counters");
    // 4 bytes per element; a full warp reads 128 contiguous bytes = 4 sectors, the last one 32 bytes = 1.
    assert_eq!(c.global_load_bytes, 4000);
    assert_eq!(c.global_store_bytes, 4000);
    assert_eq!(c.global_load_sectors, 31 * 4 + 1);
    assert_eq!(c.global_store_sectors, 31 * 4 + 1);
    assert_eq!(c.shared_requests, 0);
    assert_eq!(c.barriers, 0);
    assert_eq!(get::<f32>(&dev, &ob, n), vec![1.5f32; n]);
}

#[test]
fn strided_copy() {
    let dev = EmuDevice::new();
    let (n, stride) = (256, 8); // each lane reads its own 32-byte sector
    let (ib, ob) = (buf(&dev, &vec![2.5f32; n * stride]), out(&dev, 4 * n));
    let rep = launch(
        &dev,
        "emu_units",
        "copy_strided",
        [1, 1, 1],
        [256, 1, 1],
        &[ptr(&ib), ptr(&ob), int(n as i32), int(stride as i32)],
    );
    let c = rep.counters.expect("counters");
    assert_eq!(c.global_load_bytes, 4 * 256);
    assert_eq!(c.global_load_sectors, 256);
    assert_eq!(c.global_store_sectors, 256 * 4 / 32);
}

fn transpose(entry: &str) -> attnjoule::device::Counters {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let input: Vec<f32> = (0..1024).map(|_| rng.range(-1000, 1000) as f32).collect();
    let (ib, ob) = (buf(&dev, &input), out(&dev, 4096));
    let rep = launch(&dev, "emu_units", entry, [1, 1, 1], [32, 32, 1], &[ptr(&ib), ptr(&ob)]);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    let got: Vec<f32> = get(&dev, &ob, 1024);
    for y in 0..32 {
        for x in 0..32 {
            assert_eq!(got[y * 32 + x], input[x * 32 + y]);
        }
    }
    rep.counters.expect("counters")
}

#[test]
fn shared_transpose_bank_conflicts() {
    // 32 warps (one per row y), each: one shared store t[y][x] (32 consecutive words: 1 wavefront)
    // and one shared load t[x][y].
    let naive = transpose("transpose_naive");
    // t[x][y] with a 32-word row: word x*32+y, bank y for every lane: 32 wavefronts, 31 conflicts.
    assert_eq!(naive.shared_requests, 64);
    assert_eq!(naive.shared_wavefronts, 32 + 32 * 32);
    assert_eq!(naive.shared_bank_conflicts, 32 * 31);
    assert_eq!(naive.barriers, 32);
    assert_eq!(naive.global_load_bytes, 4096);
    assert_eq!(naive.global_load_sectors, 128);
    // Padded rows of 33 words: bank (x + y) % 32 differs per lane: conflict-free.
    let padded = transpose("transpose_padded");
    assert_eq!(padded.shared_requests, 64);
    assert_eq!(padded.shared_wavefronts, 64);
    assert_eq!(padded.shared_bank_conflicts, 0);
}

/// Global bytes of the three dense kernels for their tiling (kernels/dense.cu): the scores
/// kernel re-reads the Q tile once per key tile and the K tile once per query tile (and per
/// query head of a GQA group); the softmax reads each score row three times (max, sum,
/// normalize) and writes it once; the PV kernel reads the probability rows once per 64-column
/// slice of head_dim and the V tile once per query tile and head.
fn dense_bytes(s: &Shape) -> (u64, u64) {
    let bh = (s.batch * s.heads) as u64;
    let (sq, sk, hd) = (s.seq_q as u64, s.seq_k as u64, s.head_dim as u64);
    let (ntq, ntk) = (sq.div_ceil(64), sk.div_ceil(64));
    let scores_ld = ntk * bh * sq * hd * 2 + ntq * bh * sk * hd * 2;
    let scores_st = bh * sq * sk * 4;
    let softmax_ld = 3 * bh * sq * sk * 4;
    let softmax_st = bh * sq * sk * 4 + bh * sq * 4;
    let pv_ld = (hd / 64) * bh * sq * sk * 4 + ntq * bh * sk * hd * 2;
    let pv_st = bh * sq * hd * 2;
    (scores_ld + softmax_ld + pv_ld, scores_st + softmax_st + pv_st)
}

#[test]
fn dense_global_bytes_match_tiling() {
    for (shape, mask) in [
        (Shape::prefill(1, 100, 2, 1, 64), Mask::Causal),
        (Shape::prefill(2, 64, 4, 2, 128), Mask::None),
        (Shape::decode(1, 17, 130, 2, 2, 64), Mask::None),
    ] {
        let dev = EmuDevice::new();
        let p = Problem::new(shape, mask.clone());
        let seed = reference::fresh_seed();
        let q = reference::random_bf16(shape.q_elems(), seed);
        let k = reference::random_bf16(shape.kv_elems(), seed ^ 1);
        let v = reference::random_bf16(shape.kv_elems(), seed ^ 2);
        let att = Attention::new(Variant::Dense, &p, &Options::default()).expect("plan");
        let (_, reps) = att.run_once(&dev, &q, &k, &v).expect("run");
        let (ld, st): (u64, u64) = reps
            .iter()
            .map(|r| r.counters.as_ref().expect("counters"))
            .fold((0, 0), |a, c| (a.0 + c.global_load_bytes, a.1 + c.global_store_bytes));
        let (want_ld, want_st) = dense_bytes(&shape);
        let min = att.work().min_bytes;
        println!(
            "{shape:?} {mask:?}: loads {ld} stores {st} = {:.2}x the analytical minimum {min}",
            (ld + st) as f64 / min
        );
        assert_eq!(ld, want_ld, "load bytes");
        assert_eq!(st, want_st, "store bytes");
        assert!((ld + st) as f64 >= min);
    }
}

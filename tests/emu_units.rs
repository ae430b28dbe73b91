//! Single warp-level instructions on the emulator, checked lane by lane against layouts worked
//! out from the PTX ISA text (mma fragments, ldmatrix), and cp.async / shuffle / vote / atomic
//! semantics. Kernels: kernels/test/emu_units.cu.

mod common;
use attnjoule::emu::EmuDevice;
use common::*;
use half::{bf16, f16};

/// PTX ISA, mma.m16n8k16 .bf16/.f16 A fragment: element a_i of lane (groupID g, threadID_in_group t)
/// is at row g (i in {0,1,4,5}) or g+8, column 2t + (i&1) (+8 for i >= 4); register r holds
/// a_{2r} (low half) and a_{2r+1}.
fn a_pos_k16(lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    let row = if i < 2 || (4..6).contains(&i) { g } else { g + 8 };
    let col = t * 2 + (i & 1) + if i >= 4 { 8 } else { 0 };
    (row, col)
}
/// B fragment (k16): b_i at row 2t + (i&1) (+8 for i >= 2), column g.
fn b_pos_k16(lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    (t * 2 + (i & 1) + if i >= 2 { 8 } else { 0 }, g)
}
/// m16n8k8: a_i at row g (i < 2) or g+8, column 2t + (i&1); b_i at row 2t + i, column g.
fn a_pos_k8(lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    (if i < 2 { g } else { g + 8 }, t * 2 + (i & 1))
}
fn b_pos_k8(lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    (t * 2 + i, g)
}
/// C/D (f32): c_i at row g (i < 2) or g+8, column 2t + (i&1).
fn c_pos(lane: usize, i: usize) -> (usize, usize) {
    let (g, t) = (lane / 4, lane % 4);
    (if i < 2 { g } else { g + 8 }, t * 2 + (i & 1))
}

type Pos = fn(usize, usize) -> (usize, usize);

fn mma_case(entry: &str, k: usize, is_bf16: bool) {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let to_bits = |x: f32| if is_bf16 { bf16::from_f32(x).to_bits() } else { f16::from_f32(x).to_bits() };
    let from_bits = |b: u16| if is_bf16 { bf16::from_bits(b).to_f64() } else { f16::from_bits(b).to_f64() };
    let a: Vec<Vec<u16>> =
        (0..16).map(|_| (0..k).map(|_| to_bits(rng.range(-400, 400) as f32 / 97.0)).collect()).collect();
    let b: Vec<Vec<u16>> =
        (0..k).map(|_| (0..8).map(|_| to_bits(rng.range(-400, 400) as f32 / 89.0)).collect()).collect();
    let c: Vec<Vec<f32>> = (0..16).map(|_| (0..8).map(|_| rng.range(-1000, 1000) as f32 / 13.0).collect()).collect();
    let (na, nb) = if k == 16 { (4, 2) } else { (2, 1) };
    let (apos, bpos): (Pos, Pos) = if k == 16 { (a_pos_k16, b_pos_k16) } else { (a_pos_k8, b_pos_k8) };
    let mut af = vec![0u32; 4 * 32];
    let mut bfr = vec![0u32; 2 * 32];
    let mut cf = vec![0f32; 4 * 32];
    for lane in 0..32 {
        for i in 0..2 * na {
            let (r, cc) = apos(lane, i);
            af[(i / 2) * 32 + lane] |= (a[r][cc] as u32) << (16 * (i % 2));
        }
        for i in 0..2 * nb {
            let (r, cc) = bpos(lane, i);
            bfr[(i / 2) * 32 + lane] |= (b[r][cc] as u32) << (16 * (i % 2));
        }
        for i in 0..4 {
            let (r, cc) = c_pos(lane, i);
            cf[i * 32 + lane] = c[r][cc];
        }
    }
    let (ab, bb, cb, db) = (buf(&dev, &af), buf(&dev, &bfr), buf(&dev, &cf), out(&dev, 4 * 128));
    let rep = launch(&dev, "emu_units", entry, [1, 1, 1], [32, 1, 1], &[ptr(&ab), ptr(&bb), ptr(&cb), ptr(&db)]);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    let cnt = rep.counters.expect("counters");
    assert_eq!(cnt.mma_instructions, 1);
    assert_eq!(cnt.tensor_flops, 2 * 16 * 8 * k as u64);
    let d: Vec<f32> = get(&dev, &db, 128);
    for lane in 0..32 {
        for i in 0..4 {
            let (r, cc) = c_pos(lane, i);
            let want: f64 = (0..k).map(|kk| from_bits(a[r][kk]) * from_bits(b[kk][cc])).sum::<f64>() + c[r][cc] as f64;
            let got = d[i * 32 + lane] as f64;
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{entry} lane {lane} d{i}: got {got}, want {want}"
            );
        }
    }
}

#[test]
fn mma_m16n8k16_bf16() {
    mma_case("mma_bf16_16816", 16, true);
}

#[test]
fn mma_m16n8k16_f16() {
    mma_case("mma_f16_16816", 16, false);
}

#[test]
fn mma_m16n8k8_bf16() {
    mma_case("mma_bf16_1688", 8, true);
}

fn ldmatrix_case(entry: &str, num: usize, trans: bool) {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let tile: Vec<u16> = (0..256).map(|_| rng.next() as u16).collect();
    let mut perm: Vec<i32> = (0..32).collect();
    for i in (1..32).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        perm.swap(i, j);
    }
    let (tb, pb, ob) = (buf(&dev, &tile), buf(&dev, &perm), out(&dev, 4 * 128));
    let rep = launch(&dev, "emu_units", entry, [1, 1, 1], [32, 1, 1], &[ptr(&tb), ptr(&pb), ptr(&ob)]);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    assert_eq!(rep.counters.expect("counters").ldmatrix_instructions, 1);
    let got: Vec<u32> = get(&dev, &ob, 128);
    // Matrix m's row j is the 8 values at the address lane 8m+j supplied.
    let elem = |m: usize, row: usize, col: usize| tile[perm[8 * m + row] as usize * 8 + col] as u32;
    for lane in 0..32 {
        for m in 0..num {
            // Lane l receives row l/4, columns 2(l%4) and 2(l%4)+1; .trans swaps row and column.
            let (r, c) = (lane / 4, 2 * (lane % 4));
            let want =
                if trans { elem(m, c, r) | elem(m, c + 1, r) << 16 } else { elem(m, r, c) | elem(m, r, c + 1) << 16 };
            assert_eq!(got[m * 32 + lane], want, "{entry} lane {lane} register {m}");
        }
    }
}

#[test]
fn ldmatrix_all_forms() {
    for (e, n, t) in [
        ("ldmatrix_x1", 1, false),
        ("ldmatrix_x2", 2, false),
        ("ldmatrix_x4", 4, false),
        ("ldmatrix_x1_trans", 1, true),
        ("ldmatrix_x2_trans", 2, true),
        ("ldmatrix_x4_trans", 4, true),
    ] {
        ldmatrix_case(e, n, t);
    }
}

#[test]
fn cp_async_groups_and_zero_fill() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let input: Vec<u32> = (0..256).map(|_| rng.next() as u32).collect();
    let src: Vec<i32> = (0..32).map(|_| [0, 4, 8, 12, 16][(rng.next() % 5) as usize]).collect();
    let (ib, sb, ob) = (buf(&dev, &input), buf(&dev, &src), out(&dev, 4 * 256));
    let rep = launch(&dev, "emu_units", "cp_async_pipeline", [1, 1, 1], [32, 1, 1], &[ptr(&ib), ptr(&sb), ptr(&ob)]);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    let got: Vec<u32> = get(&dev, &ob, 256);
    assert_eq!(&got[..128], &input[..128], "group 0 after wait_group 1");
    for l in 0..32 {
        for i in 0..4 {
            let want = if (4 * i as i32) < src[l] { input[128 + l * 4 + i] } else { 0 };
            assert_eq!(got[128 + l * 4 + i], want, "lane {l} word {i} (src-size {})", src[l]);
        }
    }
}

#[test]
fn shuffles_and_votes() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let mut input: Vec<i32> = (0..32).map(|_| rng.range(-100, 100) as i32).collect();
    input.extend((0..32).map(|_| rng.range(0, 32) as i32));
    let (ib, ob) = (buf(&dev, &input), out(&dev, 4 * 32 * 12));
    let rep = launch(&dev, "emu_units", "shuffles", [1, 1, 1], [32, 1, 1], &[ptr(&ib), ptr(&ob)]);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    let got: Vec<i32> = get(&dev, &ob, 32 * 12);
    let v = &input[..32];
    let ballot = (0..32).filter(|&l| v[l] > 0).fold(0u32, |m, l| m | 1 << l) as i32;
    for l in 0..32usize {
        let idx = input[32 + l] as usize;
        let want = [
            if l >= 3 { v[l - 3] } else { v[l] },
            if l + 5 < 32 { v[l + 5] } else { v[l] },
            v[l ^ 9],
            v[idx & 31],
            if l % 8 >= 2 { v[l - 2] } else { v[l] },
            if l % 16 + 3 < 16 { v[l + 3] } else { v[l] },
            v[l ^ 5],
            v[(l & !3) + idx % 4],
            ballot,
            1,
            0,
            if l >= 16 { v[l ^ 1] } else { -1 },
        ];
        for (kk, w) in want.iter().enumerate() {
            assert_eq!(got[kk * 32 + l], *w, "case {kk} lane {l}");
        }
    }
}

#[test]
fn atomics_global_and_shared() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let input: Vec<i32> = (0..256).map(|_| rng.range(-50, 50) as i32).collect();
    let (ib, gs, fs, gm, ob) =
        (buf(&dev, &input), buf(&dev, &[0i32]), buf(&dev, &[0f32]), buf(&dev, &[i32::MIN]), out(&dev, 16));
    let rep = launch(
        &dev,
        "emu_units",
        "atomics",
        [4, 1, 1],
        [64, 1, 1],
        &[ptr(&ib), ptr(&gs), ptr(&fs), ptr(&gm), ptr(&ob)],
    );
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    let sum: i32 = input.iter().sum();
    assert_eq!(get::<i32>(&dev, &gs, 1)[0], sum);
    assert_eq!(get::<f32>(&dev, &fs, 1)[0], sum as f32 * 0.5);
    assert_eq!(get::<i32>(&dev, &gm, 1)[0], *input.iter().max().unwrap_or(&0));
    let blocks: Vec<i32> = get(&dev, &ob, 4);
    for b in 0..4 {
        assert_eq!(blocks[b], input[b * 64..(b + 1) * 64].iter().sum::<i32>(), "block {b}");
    }
}

//! The f64 reference of a paged, ragged decode step, read from the *dequantized* cache: an fp8
//! kernel's error is then measured apart from the quantization's, which [`quantization_error`]
//! reports on its own (the fp8 cache's reference against the bf16 cache's).
//!
//! It computes exactly what [`crate::reference::attention`] computes, in the same order (keys
//! ascending, the same sums), so a contiguous batch gives bit-identical results; it reads only the
//! keys each row sees, so page tails and unused pages may hold anything.

use super::fp8::{self, Fp8Pool};
use super::{BatchError, BatchResult, KvDtype, PagedBatch};
use crate::mask::Mask;
use half::bf16;
use rayon::prelude::*;

/// One pool (K or V) of a batch, in the batch's KV dtype.
#[derive(Debug, Clone, Copy)]
pub enum KvPool<'a> {
    Bf16(&'a [bf16]),
    Fp8(&'a Fp8Pool),
}

impl KvPool<'_> {
    fn check(&self, b: &PagedBatch, what: &'static str) -> BatchResult<()> {
        let (dtype, elems, scales) = match self {
            KvPool::Bf16(x) => (KvDtype::Bf16, x.len(), b.scale_elems()),
            KvPool::Fp8(p) => (KvDtype::Fp8, p.codes.len(), p.scales.len()),
        };
        if dtype != b.kv_dtype {
            return Err(BatchError::Dtype { what, got: dtype, want: b.kv_dtype });
        }
        if elems != b.pool_elems() {
            return Err(BatchError::Data { what, got: elems, want: b.pool_elems() });
        }
        if scales != b.scale_elems() {
            return Err(BatchError::Data { what: "fp8 scales", got: scales, want: b.scale_elems() });
        }
        Ok(())
    }

    /// The dequantized row at `slot` (a [`PagedBatch::slot_index`]).
    fn row(&self, slot: usize, d: usize, out: &mut [f64]) {
        match self {
            KvPool::Bf16(x) => out.iter_mut().zip(&x[slot * d..][..d]).for_each(|(o, v)| *o = v.to_f64()),
            KvPool::Fp8(p) => {
                let s = p.scales[slot];
                out.iter_mut().zip(&p.codes[slot * d..][..d]).for_each(|(o, &c)| *o = fp8::dequantize(c, s));
            }
        }
    }
}

/// Reference outputs of a batch: O `[total_q, heads, head_dim]` and LSE `[total_q, heads]` (natural
/// log, -inf for a row that sees no key).
#[derive(Debug, Clone, PartialEq)]
pub struct PagedReference {
    pub o: Vec<f64>,
    pub lse: Vec<f64>,
}

/// Attention in f64 over a paged batch: `masks[s]` applied with sequence `s`'s own new tokens and
/// keys; `q` is `[total_q, heads, head_dim]`. Parallel over (query row, head).
pub fn attention(
    b: &PagedBatch,
    masks: &[Mask],
    q: &[bf16],
    k: KvPool<'_>,
    v: KvPool<'_>,
) -> BatchResult<PagedReference> {
    b.validate()?;
    b.check_masks(masks)?;
    let d = b.head_dim;
    let want_q = b.total_q() * b.heads * d;
    if q.len() != want_q {
        return Err(BatchError::Data { what: "Q", got: q.len(), want: want_q });
    }
    k.check(b, "K pool")?;
    v.check(b, "V pool")?;
    let rows: Vec<(usize, usize, usize)> = (0..b.num_seqs())
        .flat_map(|s| (0..b.new_tokens(s)).flat_map(move |t| (0..b.heads).map(move |h| (s, t, h))))
        .collect();
    let scale = b.scale();
    let results: Vec<(Vec<f64>, f64)> = rows
        .par_iter()
        .map(|&(s, t, h)| {
            let (nq, nk, hk) = (b.new_tokens(s), b.seq_len(s), h / b.group());
            let qrow: Vec<f64> = q[b.q_index(b.q_start(s) + t, h)..][..d].iter().map(|x| x.to_f64()).collect();
            let keys: Vec<usize> = masks[s].row_runs(t, nq, nk).into_iter().flat_map(|(lo, hi)| lo..hi).collect();
            let slot = |j: usize| {
                let (page, slot) = b.locate(s, j);
                b.slot_index(page, hk, slot)
            };
            let mut row = vec![0.0; d];
            // Scores, softmax and PV exactly as crate::reference does them.
            let scores: Vec<(usize, f64)> = keys
                .iter()
                .map(|&j| {
                    k.row(slot(j), d, &mut row);
                    (j, scale * qrow.iter().zip(&row).map(|(a, b)| a * b).sum::<f64>())
                })
                .collect();
            let mut o = vec![0.0; d];
            if scores.is_empty() {
                return (o, f64::NEG_INFINITY);
            }
            let m = scores.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = scores.iter().map(|x| (x.1 - m).exp()).sum();
            let lse = m + sum.ln();
            for (j, x) in scores {
                let pj = (x - lse).exp();
                v.row(slot(j), d, &mut row);
                o.iter_mut().zip(&row).for_each(|(o, v)| *o += pj * v);
            }
            (o, lse)
        })
        .collect();
    let mut out = PagedReference { o: vec![0.0; want_q], lse: vec![0.0; b.total_q() * b.heads] };
    for (&(s, t, h), (o, lse)) in rows.iter().zip(results) {
        let r = b.q_start(s) + t;
        out.o[b.q_index(r, h)..][..d].copy_from_slice(&o);
        out.lse[b.lse_index(r, h)] = lse;
    }
    Ok(out)
}

/// What storing the cache in fp8 costs in accuracy, before any kernel: the quantized cache's
/// dequantized values against the bf16 ones (cached rows only), and the references computed from
/// each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantError {
    pub k_rel_l2: f64,
    pub v_rel_l2: f64,
    /// The fp8 cache's reference O against the bf16 cache's.
    pub o_rel_l2: f64,
    /// Largest LSE difference over rows that see a key.
    pub lse_max_abs: f64,
}

/// Quantizes the bf16 pools `k` and `v` of `b` (whose `kv_dtype` is ignored) and compares the
/// references of both caches. Returns the error and the fp8 pools.
pub fn quantization_error(
    b: &PagedBatch,
    masks: &[Mask],
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
) -> BatchResult<(QuantError, Fp8Pool, Fp8Pool)> {
    let b16 = PagedBatch { kv_dtype: KvDtype::Bf16, ..b.clone() };
    let b8 = PagedBatch { kv_dtype: KvDtype::Fp8, ..b.clone() };
    let (k8, v8) = (fp8::quantize_pool(&b16, k)?, fp8::quantize_pool(&b16, v)?);
    let want = attention(&b16, masks, q, KvPool::Bf16(k), KvPool::Bf16(v))?;
    let got = attention(&b8, masks, q, KvPool::Fp8(&k8), KvPool::Fp8(&v8))?;
    let d = b.head_dim;
    let pool_err = |x: &[bf16], p: &Fp8Pool| {
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let mut rows = b16.used_rows();
        rows.sort_unstable();
        rows.dedup();
        for r in rows {
            for i in 0..d {
                want.push(x[r * d + i].to_f64());
                got.push(fp8::dequantize(p.codes[r * d + i], p.scales[r]));
            }
        }
        crate::reference::rel_l2(&got, &want)
    };
    let lse_max_abs =
        got.lse.iter().zip(&want.lse).filter(|(_, w)| w.is_finite()).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
    let err = QuantError {
        k_rel_l2: pool_err(k, &k8),
        v_rel_l2: pool_err(v, &v8),
        o_rel_l2: crate::reference::rel_l2(&got.o, &want.o),
        lse_max_abs,
    };
    Ok((err, k8, v8))
}

#[cfg(test)]
mod tests {
    use super::super::{Allocation, SeqSpec};
    use super::*;
    use crate::mask::MaskRecipe;
    use crate::problem::{Problem, Shape};
    use crate::reference::{fresh_seed, random_bf16};
    use rand::{Rng, SeedableRng};

    fn random_recipe(rng: &mut impl Rng) -> MaskRecipe {
        let block = [16, 64][rng.random_range(0..2)];
        match rng.random_range(0..7) {
            0 => MaskRecipe::None,
            1 => MaskRecipe::Causal,
            2 => MaskRecipe::Window { keys: rng.random_range(1..200) },
            3 => MaskRecipe::Longformer { block, local: rng.random_range(0..3), global: rng.random_range(0..3) },
            4 => MaskRecipe::BigBird {
                block,
                local: rng.random_range(0..3),
                global: rng.random_range(0..3),
                random: rng.random_range(0..4),
                seed: rng.random(),
            },
            5 => MaskRecipe::Strided { block, local: rng.random_range(0..3), stride: rng.random_range(1..5) },
            _ => MaskRecipe::Window { keys: 1 },
        }
    }

    fn gqa(rng: &mut impl Rng) -> (usize, usize) {
        [(8, 1), (4, 4), (8, 2), (1, 1)][rng.random_range(0..4)]
    }

    /// Sequence `s` of a bf16 batch as a contiguous single-sequence call: its problem and its K, V
    /// gathered into BSHD.
    fn as_contiguous(b: &PagedBatch, s: usize, mask: &Mask, k: &[bf16], v: &[bf16]) -> (Problem, Vec<bf16>, Vec<bf16>) {
        let shape = Shape::decode(1, b.new_tokens(s), b.seq_len(s), b.heads, b.kv_heads, b.head_dim);
        let (mut kc, mut vc) = (vec![bf16::NAN; shape.kv_elems()], vec![bf16::NAN; shape.kv_elems()]);
        let d = b.head_dim;
        for j in 0..b.seq_len(s) {
            let (page, slot) = b.locate(s, j);
            for hk in 0..b.kv_heads {
                let at = b.slot_index(page, hk, slot) * d;
                kc[shape.kv_index(0, j, hk)..][..d].copy_from_slice(&k[at..at + d]);
                vc[shape.kv_index(0, j, hk)..][..d].copy_from_slice(&v[at..at + d]);
            }
        }
        (Problem::new(shape, mask.clone()), kc, vc)
    }

    /// A uniform contiguous call, paged under an identity table (and under a shuffled table with
    /// spare and unused pages), every unused slot NaN: O and LSE bit-identical to
    /// crate::reference, for every mask recipe, GQA and head dim.
    #[test]
    fn contiguous_batches_are_bit_identical_to_the_reference() {
        let seed = fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for case in 0..40 {
            let (h, hk) = gqa(&mut rng);
            let d = [64, 128][rng.random_range(0..2)];
            let shape =
                Shape::decode(rng.random_range(1..4), rng.random_range(1..17), rng.random_range(1..400), h, hk, d);
            let recipe = random_recipe(&mut rng);
            let page = [16, 32, 64, 128, 256][rng.random_range(0..5)];
            let mask = recipe.mask(shape.seq_q, shape.seq_k).unwrap();
            let s = rng.random();
            let (q, k, v) = (
                random_bf16(shape.q_elems(), s),
                random_bf16(shape.kv_elems(), s + 1),
                random_bf16(shape.kv_elems(), s + 2),
            );
            let want = crate::reference::attention(&Problem::new(shape, mask.clone()), &q, &k, &v).unwrap();
            let identity = PagedBatch::contiguous(&shape, page, KvDtype::Bf16).unwrap();
            let seqs = vec![SeqSpec { keys: shape.seq_k, new_tokens: shape.seq_q }; shape.batch];
            let shuffled = PagedBatch::allocate(
                h,
                hk,
                d,
                page,
                KvDtype::Bf16,
                &seqs,
                Allocation { spare_per_seq: 2, unused_pages: 3, shuffle: Some(rng.random()) },
            )
            .unwrap();
            for b in [identity, shuffled] {
                let kp = b.pack_contiguous(&shape, &k, bf16::NAN).unwrap();
                let vp = b.pack_contiguous(&shape, &v, bf16::NAN).unwrap();
                let masks = b.masks(&recipe).unwrap();
                let got = attention(&b, &masks, &q, KvPool::Bf16(&kp), KvPool::Bf16(&vp)).unwrap();
                // Q and O rows of a uniform batch are BSHD already; LSE is [b, h, s_q] there.
                assert!(got.o == want.o, "case {case} {recipe} {shape:?} page {page}: O differs");
                for bi in 0..shape.batch {
                    for t in 0..shape.seq_q {
                        for hh in 0..h {
                            let (g, w) =
                                (got.lse[b.lse_index(bi * shape.seq_q + t, hh)], want.lse[shape.lse_index(bi, hh, t)]);
                            assert!(g == w || (g.is_nan() && w.is_nan()), "case {case}: LSE {g} vs {w}");
                        }
                    }
                }
                assert!(got.o.iter().all(|x| x.is_finite()), "a NaN slot was read");
            }
        }
    }

    /// A ragged batch (lengths 0..1500, 1..16 new tokens, out-of-order pages, NaN everywhere no
    /// key lives, shared-nothing) against each sequence computed alone by crate::reference: every
    /// row bit-identical; rows that see no key give O = 0 and LSE = -inf.
    #[test]
    fn ragged_batches_are_each_sequence_alone() {
        let seed = fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for case in 0..12 {
            let (h, hk) = gqa(&mut rng);
            let d = [64, 128][rng.random_range(0..2)];
            let page = [16, 64, 256][rng.random_range(0..3)];
            let seqs: Vec<SeqSpec> = (0..rng.random_range(1..9))
                .map(|_| SeqSpec {
                    keys: [0, 1, 7, 64, 65, 300, 1500][rng.random_range(0..7)].min(rng.random_range(0..1500)),
                    new_tokens: rng.random_range(1..17),
                })
                .collect();
            let alloc = Allocation {
                spare_per_seq: rng.random_range(0..2),
                unused_pages: rng.random_range(0..4),
                shuffle: Some(rng.random()),
            };
            let b = PagedBatch::allocate(h, hk, d, page, KvDtype::Bf16, &seqs, alloc).unwrap();
            let recipe = random_recipe(&mut rng);
            let masks = b.masks(&recipe).unwrap();
            let s = rng.random();
            let q = random_bf16(b.total_q() * h * d, s);
            let (k, v) = (b.random_pool(s + 1, bf16::NAN), b.random_pool(s + 2, bf16::NAN));
            let got = attention(&b, &masks, &q, KvPool::Bf16(&k), KvPool::Bf16(&v)).unwrap();
            for si in 0..b.num_seqs() {
                let nq = b.new_tokens(si);
                if b.seq_len(si) == 0 {
                    for r in b.q_start(si)..b.q_start(si) + nq {
                        for hh in 0..h {
                            assert_eq!(got.lse[b.lse_index(r, hh)], f64::NEG_INFINITY);
                            assert!(got.o[b.q_index(r, hh)..][..d].iter().all(|&x| x == 0.0));
                        }
                    }
                    continue;
                }
                let (p, kc, vc) = as_contiguous(&b, si, &masks[si], &k, &v);
                let qs = &q[b.q_index(b.q_start(si), 0)..][..nq * h * d];
                let want = crate::reference::attention(&p, qs, &kc, &vc).unwrap();
                assert!(
                    got.o[b.q_index(b.q_start(si), 0)..][..nq * h * d] == want.o[..],
                    "case {case} seq {si} {recipe}"
                );
                for t in 0..nq {
                    for hh in 0..h {
                        let (g, w) =
                            (got.lse[b.lse_index(b.q_start(si) + t, hh)], want.lse[p.shape.lse_index(0, hh, t)]);
                        assert!(g == w, "case {case} seq {si} row {t} head {hh}: {g} vs {w}");
                    }
                }
            }
        }
    }

    /// Windows that leave a sequence, or some of its rows, without a key.
    #[test]
    fn zero_visible_keys_under_a_window() {
        let seqs = [
            SeqSpec { keys: 0, new_tokens: 3 },  // an empty cache: nothing to see
            SeqSpec { keys: 2, new_tokens: 5 },  // rows 0..3 sit before the first key
            SeqSpec { keys: 40, new_tokens: 1 }, // an ordinary row
        ];
        let b = PagedBatch::allocate(
            2,
            1,
            64,
            16,
            KvDtype::Bf16,
            &seqs,
            Allocation { shuffle: Some(1), ..Default::default() },
        )
        .unwrap();
        let masks = b.masks(&MaskRecipe::Window { keys: 1 }).unwrap();
        let q = random_bf16(b.total_q() * 2 * 64, 3);
        let (k, v) = (b.random_pool(4, bf16::NAN), b.random_pool(5, bf16::NAN));
        let r = attention(&b, &masks, &q, KvPool::Bf16(&k), KvPool::Bf16(&v)).unwrap();
        let sees_none: Vec<bool> =
            (0..b.total_q()).map(|row| r.lse[b.lse_index(row, 0)] == f64::NEG_INFINITY).collect();
        assert_eq!(sees_none, [true, true, true, true, true, true, false, false, false]);
        for (row, &none) in sees_none.iter().enumerate() {
            let o = &r.o[b.q_index(row, 0)..][..2 * 64];
            assert!(if none { o.iter().all(|&x| x == 0.0) } else { o.iter().any(|&x| x != 0.0) });
        }
        // A window of one key at the newest token: the output is that token's V row exactly.
        let (page, slot) = b.locate(2, 39);
        let vrow: Vec<f64> = v[b.slot_index(page, 0, slot) * 64..][..64].iter().map(|x| x.to_f64()).collect();
        assert_eq!(&r.o[b.q_index(8, 1)..][..64], &vrow[..]);
    }

    /// fp8 pools whose dequantized values are bf16 values (power-of-two scales): the fp8 path
    /// (codes, scales, their indexing) gives exactly the bf16 path's result.
    #[test]
    fn fp8_reads_dequantized_values() {
        let seed = fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let seqs: Vec<SeqSpec> =
            (0..5).map(|_| SeqSpec { keys: rng.random_range(0..700), new_tokens: rng.random_range(1..17) }).collect();
        let b8 = PagedBatch::allocate(
            8,
            2,
            128,
            32,
            KvDtype::Fp8,
            &seqs,
            Allocation { shuffle: Some(rng.random()), unused_pages: 2, ..Default::default() },
        )
        .unwrap();
        let b16 = PagedBatch { kv_dtype: KvDtype::Bf16, ..b8.clone() };
        let mut pools = Vec::new();
        for _ in 0..2 {
            let mut p8 =
                Fp8Pool { codes: vec![fp8::NAN_CODE; b8.pool_elems()], scales: vec![bf16::NAN; b8.scale_elems()] };
            let mut p16 = vec![bf16::NAN; b8.pool_elems()];
            for row in b8.used_rows() {
                p8.scales[row] = bf16::from_f32(2f32.powi(rng.random_range(-4..5)));
                for i in 0..128 {
                    let c = loop {
                        let c: u8 = rng.random();
                        if c & 0x7F != 0x7F {
                            break c;
                        }
                    };
                    p8.codes[row * 128 + i] = c;
                    let x = fp8::dequantize(c, p8.scales[row]);
                    p16[row * 128 + i] = bf16::from_f64(x);
                    assert_eq!(p16[row * 128 + i].to_f64(), x, "exact in bf16");
                }
            }
            pools.push((p8, p16));
        }
        let masks = b8.masks(&MaskRecipe::Causal).unwrap();
        let q = random_bf16(b8.total_q() * 8 * 128, rng.random());
        let a = attention(&b8, &masks, &q, KvPool::Fp8(&pools[0].0), KvPool::Fp8(&pools[1].0)).unwrap();
        let c = attention(&b16, &masks, &q, KvPool::Bf16(&pools[0].1), KvPool::Bf16(&pools[1].1)).unwrap();
        assert!(a == c);
        // The pool must be the batch's dtype.
        assert!(attention(&b16, &masks, &q, KvPool::Fp8(&pools[0].0), KvPool::Fp8(&pools[1].0)).is_err());
    }

    #[test]
    fn quantization_error_is_reported() {
        let seed = fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for d in [64, 128] {
            let seqs: Vec<SeqSpec> = (0..6)
                .map(|_| SeqSpec { keys: rng.random_range(1..3000), new_tokens: rng.random_range(1..5) })
                .collect();
            let b = PagedBatch::allocate(
                8,
                1,
                d,
                64,
                KvDtype::Fp8,
                &seqs,
                Allocation { shuffle: Some(2), ..Default::default() },
            )
            .unwrap();
            let masks = b.masks(&MaskRecipe::Causal).unwrap();
            let q = random_bf16(b.total_q() * 8 * d, rng.random());
            let (k, v) = (b.random_pool(rng.random(), bf16::NAN), b.random_pool(rng.random(), bf16::NAN));
            let (e, _, _) = quantization_error(&b, &masks, &q, &k, &v).unwrap();
            println!("d {d}: fp8 e4m3 per-token scales vs bf16 cache: {e:?}");
            // Elements err by at most 2^-4 relative (half a step of 3 mantissa bits), so the
            // pools' rel L2 does too; the output's error is what this report is for.
            for x in [e.k_rel_l2, e.v_rel_l2] {
                assert!(x > 0.0 && x <= 2f64.powi(-4), "{e:?}");
            }
            assert!(e.o_rel_l2 > 0.0 && e.o_rel_l2.is_finite(), "{e:?}");
            assert!(e.lse_max_abs > 0.0 && e.lse_max_abs.is_finite(), "{e:?}");
        }
    }
}

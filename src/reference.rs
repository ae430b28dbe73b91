//! The f64 CPU reference: attention for every mask, prefill and decode alike, computed in f64 from
//! the bf16-rounded inputs. It is the ground truth every kernel is compared against.

use crate::error::Result;
use crate::problem::Problem;
use half::bf16;
use rayon::prelude::*;

/// Reference outputs: O in f64 (`[b, s_q, h, d]`) and LSE (`[b, h, s_q]`, natural log, -inf for
/// a row that sees no key).
#[derive(Debug, Clone)]
pub struct Reference {
    pub o: Vec<f64>,
    pub lse: Vec<f64>,
}

/// Inputs widened once to f64.
struct Inputs<'a> {
    p: &'a Problem,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
}

fn widen(x: &[bf16]) -> Vec<f64> {
    x.par_iter().map(|v| v.to_f64()).collect()
}

impl<'a> Inputs<'a> {
    fn new(p: &'a Problem, q: &[bf16], k: &[bf16], v: &[bf16]) -> Result<Self> {
        Self::from_f64(p, widen(q), widen(k), widen(v))
    }
    fn from_f64(p: &'a Problem, q: Vec<f64>, k: Vec<f64>, v: Vec<f64>) -> Result<Self> {
        p.validate()?;
        p.shape.check_input_lens(q.len(), k.len(), v.len())?;
        Ok(Inputs { p, q, k, v })
    }

    /// Scaled scores of row (b, h, i) against its visible keys: (key index, score).
    fn scores(&self, b: usize, h: usize, i: usize) -> Vec<(usize, f64)> {
        let s = &self.p.shape;
        let (d, hk, scale) = (s.head_dim, h / s.group(), self.p.scale());
        let qrow = &self.q[s.q_index(b, i, h)..][..d];
        let keys: Box<dyn Iterator<Item = usize>> = match self.p.mask.key_range(i, s.seq_q, s.seq_k) {
            Some((lo, hi)) => Box::new(lo..hi),
            None => Box::new((0..s.seq_k).filter(move |&j| self.p.mask.visible(i, j, s.seq_q, s.seq_k))),
        };
        keys.map(|j| {
            let krow = &self.k[s.kv_index(b, j, hk)..][..d];
            (j, scale * qrow.iter().zip(krow).map(|(a, b)| a * b).sum::<f64>())
        })
        .collect()
    }

    /// Softmax probabilities of one row over its visible keys, with the row's LSE.
    fn probs(&self, b: usize, h: usize, i: usize) -> (Vec<(usize, f64)>, f64) {
        let sc = self.scores(b, h, i);
        if sc.is_empty() {
            return (sc, f64::NEG_INFINITY);
        }
        let m = sc.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = sc.iter().map(|x| (x.1 - m).exp()).sum();
        let lse = m + sum.ln();
        (sc.into_iter().map(|(j, x)| (j, (x - lse).exp())).collect(), lse)
    }
}

/// Attention in f64. Parallel over (batch, head, row).
pub fn attention(p: &Problem, q: &[bf16], k: &[bf16], v: &[bf16]) -> Result<Reference> {
    Ok(compute(&Inputs::new(p, q, k, v)?, None).0)
}

/// Attention in f64 of inputs given as f64 values (e.g. e4m3 values times their descales:
/// [`crate::ops::fp8::Fp8Inputs`]), BSHD like the bf16 inputs.
pub fn attention_f64(p: &Problem, q: &[f64], k: &[f64], v: &[f64]) -> Result<Reference> {
    Ok(compute(&Inputs::from_f64(p, q.to_vec(), k.to_vec(), v.to_vec())?, None).0)
}

/// Per output element (BSHD like O), the sums that bound how far rounding the probabilities can
/// move it: `m = Σ_j P[i, j] |V[j, e]|` (a relative error ε on every P[i, j] moves O[i, e] by at
/// most ε m) and `small = Σ_j min(P[i, j], floor) |V[j, e]|` (an absolute error of at most `floor`,
/// and never more than the probability itself, moves it by at most `small`).
#[derive(Debug, Clone, Default)]
pub struct Magnitudes {
    pub m: Vec<f64>,
    pub small: Vec<f64>,
}

/// [`attention_f64`] and its [`Magnitudes`] with the given probability floor.
pub fn attention_f64_with_magnitudes(
    p: &Problem,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    floor: f64,
) -> Result<(Reference, Magnitudes)> {
    let (r, m) = compute(&Inputs::from_f64(p, q.to_vec(), k.to_vec(), v.to_vec())?, Some(floor));
    Ok((r, m.unwrap_or_default()))
}

fn compute(inp: &Inputs, floor: Option<f64>) -> (Reference, Option<Magnitudes>) {
    let p = inp.p;
    let s = p.shape;
    let d = s.head_dim;
    let rows: Vec<(usize, usize, usize)> =
        (0..s.batch).flat_map(|b| (0..s.heads).flat_map(move |h| (0..s.seq_q).map(move |i| (b, h, i)))).collect();
    let width = if floor.is_some() { d } else { 0 };
    // Per row: O, LSE, and (with a floor) the two magnitude sums.
    type Row = (Vec<f64>, f64, Vec<f64>, Vec<f64>);
    let results: Vec<Row> = rows
        .par_iter()
        .map(|&(b, h, i)| {
            let (pr, lse) = inp.probs(b, h, i);
            let mut o = vec![0.0; d];
            let (mut m, mut small) = (vec![0.0; width], vec![0.0; width]);
            for (j, pj) in pr {
                let vrow = &inp.v[s.kv_index(b, j, h / s.group())..][..d];
                o.iter_mut().zip(vrow).for_each(|(o, v)| *o += pj * v);
                if let Some(f) = floor {
                    m.iter_mut().zip(vrow).for_each(|(m, v)| *m += pj * v.abs());
                    small.iter_mut().zip(vrow).for_each(|(n, v)| *n += pj.min(f) * v.abs());
                }
            }
            (o, lse, m, small)
        })
        .collect();
    let mut out = Reference { o: vec![0.0; s.q_elems()], lse: vec![0.0; s.lse_elems()] };
    let mut mags = floor.map(|_| Magnitudes { m: vec![0.0; s.q_elems()], small: vec![0.0; s.q_elems()] });
    for (&(b, h, i), (o, lse, m, small)) in rows.iter().zip(results) {
        let at = s.q_index(b, i, h);
        out.o[at..][..d].copy_from_slice(&o);
        out.lse[s.lse_index(b, h, i)] = lse;
        if let Some(g) = mags.as_mut() {
            g.m[at..][..d].copy_from_slice(&m);
            g.small[at..][..d].copy_from_slice(&small);
        }
    }
    (out, mags)
}

/// The probability row P[b, h, i, :] as a dense vector over all keys (0 where masked); for tests.
pub fn prob_row(p: &Problem, q: &[bf16], k: &[bf16], v: &[bf16], b: usize, h: usize, i: usize) -> Result<Vec<f64>> {
    let inp = Inputs::new(p, q, k, v)?;
    let mut row = vec![0.0; p.shape.seq_k];
    for (j, pj) in inp.probs(b, h, i).0 {
        row[j] = pj;
    }
    Ok(row)
}

/// Relative L2 error ‖got − want‖ / ‖want‖ (absolute when the reference is all zeros).
pub fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Compares a kernel's LSE with the reference: the largest absolute difference over finite rows,
/// and whether the -inf rows agree exactly.
pub fn lse_error(got: &[f32], want: &[f64]) -> (f64, bool) {
    let mut max = 0.0f64;
    let mut inf_ok = true;
    for (g, w) in got.iter().zip(want) {
        if w.is_infinite() {
            inf_ok &= g.is_infinite() && g.is_sign_negative();
        } else {
            max = max.max((*g as f64 - w).abs());
        }
    }
    (max, inf_ok)
}

/// Fresh random bf16 values in [-1, 1) from `seed` (tests draw a new seed each run).
pub fn random_bf16(n: usize, seed: u64) -> Vec<bf16> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0))).collect()
}

/// A seed that differs each run, printed by tests so a failure can be replayed (ATTNJOULE_SEED).
pub fn fresh_seed() -> u64 {
    if let Some(s) = std::env::var("ATTNJOULE_SEED").ok().and_then(|s| s.parse().ok()) {
        return s;
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ ((t >> 64) as u64) ^ (std::process::id() as u64).rotate_left(32)
}

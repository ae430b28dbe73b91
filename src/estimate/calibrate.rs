//! Calibration from end-to-end serving measurements: `attnjoule estimate --calibration FILE`.
//!
//! FILE is a CSV of measured serving points (format in `profiles/calibration/README.md`): a model
//! served on `gpus` GPUs of one kind, `batch` sequences decoding together at a mean `context`,
//! and what was measured per output token (GPU joules, seconds of one sequence). Each point is
//! predicted as one kv-cache decode step of the estimator on the bundled analytical profile of
//! its GPU ([`super::Estimator::decode_step`]), with four free figures of the machine
//! ([`Params`]): achieved bandwidth and FLOP/s fractions, seconds of overhead per step, and
//! memory-bound power as a fraction of board power. They are fitted by least squares on the log
//! errors of every measured value, within stated bounds, plus a weak pull (weight
//! [`PRIOR_WEIGHT`]) towards the analytical assumptions that only decides directions the data
//! leave open (with joules alone, bandwidth and memory-bound power trade against each other).
//! [`hold_out`] refits without each point, or without each model, and predicts what was left out.

use super::analytical::{self, Datasheet};
use super::machine::{self, Machine};
use super::model::ModelSpec;
use super::{Estimator, Options};
use crate::error::{invalid, Error, Result};
use crate::profile::Profile;
use serde::Serialize;
use std::path::Path;

/// The free figures of the machine a calibration fits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Params {
    /// Achieved fraction of peak DRAM bandwidth.
    pub bandwidth: f64,
    /// Achieved fraction of peak tensor FLOP/s.
    pub flops: f64,
    /// Seconds per serving step outside kernels.
    pub step_overhead_s: f64,
    /// Memory-bound power as a fraction of board power.
    pub memory_power: f64,
}

/// The parameters' names, bounds and the analytical assumption each starts from.
pub const PARAMS: [(&str, (f64, f64), f64); 4] = [
    ("achieved bandwidth (fraction of peak)", machine::BANDWIDTH_RANGE, 1.0),
    ("achieved FLOP/s (fraction of peak)", machine::FLOPS_RANGE, 1.0),
    ("overhead per step (s)", machine::OVERHEAD_RANGE_S, 0.0),
    ("memory-bound power (fraction of board)", machine::MEMORY_POWER_RANGE, machine::MEMORY_BOUND_FRACTION),
];

/// The documented bound on predicting a model size the fit did not see
/// ([`Scheme::LeaveModelOut`] on the shipped `profiles/calibration/h100-serving.csv`): median
/// |ln(predicted / measured)| below this (a factor of e^0.35 = 1.42).
pub const HELD_OUT_MODEL_BOUND: f64 = 0.35;

/// Weight of the pull towards the analytical assumptions, per parameter, in the squared-log-error
/// units of the objective: small against one point's squared error of 10% (0.009).
pub const PRIOR_WEIGHT: f64 = 1e-4;

impl Params {
    fn to_vec(self) -> [f64; 4] {
        [self.bandwidth, self.flops, self.step_overhead_s, self.memory_power]
    }
    fn from_vec(v: [f64; 4]) -> Params {
        Params { bandwidth: v[0], flops: v[1], step_overhead_s: v[2], memory_power: v[3] }
    }
    /// Unbounded coordinates: a logistic map onto each parameter's range.
    fn from_z(z: &[f64; 4]) -> Params {
        let mut v = [0.0; 4];
        for (i, (_, (lo, hi), _)) in PARAMS.iter().enumerate() {
            v[i] = lo + (hi - lo) / (1.0 + (-z[i]).exp());
        }
        Params::from_vec(v)
    }
    fn to_z(self) -> [f64; 4] {
        let v = self.to_vec();
        let mut z = [0.0; 4];
        for (i, (_, (lo, hi), _)) in PARAMS.iter().enumerate() {
            // Assumptions at a bound (peaks reached, no overhead) start just inside it.
            let f = ((v[i] - lo) / (hi - lo)).clamp(0.02, 0.98);
            z[i] = (f / (1.0 - f)).ln();
        }
        z
    }
    /// The analytical assumptions.
    pub fn assumed() -> Params {
        Params::from_vec(PARAMS.map(|p| p.2))
    }
}

/// A calibration as the estimator applies it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub params: Params,
    /// "calibrated on N points from A, B".
    pub label: String,
}

/// Weights as the measured server stored them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightDtype {
    Bf16,
    Fp8,
}

/// One measured serving point.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// Line of the CSV file.
    pub line: usize,
    /// The model column as written.
    pub model: String,
    #[serde(skip)]
    pub spec: ModelSpec,
    /// Datasheet key (h100, h200).
    pub gpu: &'static str,
    pub gpus: usize,
    pub batch: usize,
    pub context: usize,
    pub weights: WeightDtype,
    pub j_per_token: Option<f64>,
    pub s_per_token: Option<f64>,
    pub source: String,
}

/// Largest calibration file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most points a calibration file may hold (every fit costs each of them).
pub const MAX_POINTS: usize = 200;

const COLUMNS: [&str; 9] =
    ["model", "gpu", "gpus", "batch", "context", "weight_dtype", "j_per_token", "s_per_token", "source"];

/// Reads a calibration CSV; model files are found relative to its folder.
pub fn read(path: &Path) -> Result<Vec<Measured>> {
    let text = crate::files::read_text(path, MAX_FILE_BYTES, "calibration file")?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
}

/// One CSV record's fields: commas separate, double quotes enclose a field, `""` inside quotes is
/// a quote.
fn fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let cur = out.last_mut().expect("one field at least");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (',', false) => out.push(String::new()),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    Ok(out.into_iter().map(|f| f.trim().to_string()).collect())
}

/// Parses calibration CSV text (`#` starts a comment line; the first other line is the header).
pub fn parse(text: &str, dir: &Path) -> Result<Vec<Measured>> {
    let mut header: Option<Vec<usize>> = None;
    let mut points = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let at = |m: String| Error::Format(format!("line {line}: {m}"));
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let f = fields(t).map_err(at)?;
        let Some(cols) = &header else {
            let mut idx = Vec::new();
            for want in COLUMNS {
                match f.iter().position(|c| c == want) {
                    Some(k) => idx.push(k),
                    None => return Err(at(format!("the header has no column {want:?} (needs {})", COLUMNS.join(",")))),
                }
            }
            header = Some(idx);
            continue;
        };
        if f.len() != text_width(cols) {
            return Err(at(format!("{} fields, the header has {}", f.len(), text_width(cols))));
        }
        if points.len() == MAX_POINTS {
            return Err(at(format!("more than {MAX_POINTS} points")));
        }
        let get = |name: &str| f[cols[COLUMNS.iter().position(|c| *c == name).expect("a known column")]].as_str();
        let count = |name: &str, max: usize| -> Result<usize> {
            match get(name).parse::<usize>() {
                Ok(v) if (1..=max).contains(&v) => Ok(v),
                _ => Err(at(format!("{name} must be an integer in 1..={max}, got {:?}", get(name)))),
            }
        };
        let value = |name: &str| -> Result<Option<f64>> {
            let s = get(name);
            if s.is_empty() {
                return Ok(None);
            }
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Some(v)),
                _ => Err(at(format!("{name} must be a positive number (or empty), got {s:?}"))),
            }
        };
        let model = get("model").to_string();
        let mut spec = match super::model::preset(&model) {
            Some(m) => m,
            None if model.ends_with(".toml") || model.ends_with(".json") => {
                ModelSpec::resolve(dir.join(&model)).map_err(|e| at(e.to_string()))?
            }
            None => {
                return Err(at(format!(
                    "model {model:?} is neither a preset ({}) nor a .toml/.json file",
                    super::model::PRESETS.join(", ")
                )))
            }
        };
        let weights = match get("weight_dtype") {
            "bf16" | "" => WeightDtype::Bf16,
            "fp8" => WeightDtype::Fp8,
            w => return Err(at(format!("weight_dtype must be bf16 or fp8, got {w:?}"))),
        };
        if weights == WeightDtype::Fp8 {
            spec.bytes_per_param = 1.0;
        }
        let gpu = analytical::datasheet(get("gpu")).map_err(|e| at(e.to_string()))?.key;
        let (j, s) = (value("j_per_token")?, value("s_per_token")?);
        if j.is_none() && s.is_none() {
            return Err(at("no measurement: give j_per_token, s_per_token or both".into()));
        }
        let source = get("source").to_string();
        if source.is_empty() {
            return Err(at("every point needs its source".into()));
        }
        points.push(Measured {
            line,
            model,
            spec,
            gpu,
            gpus: count("gpus", 64)?,
            batch: count("batch", 1 << 16)?,
            context: count("context", super::MAX_CONTEXT)?,
            weights,
            j_per_token: j,
            s_per_token: s,
            source,
        });
    }
    if header.is_none() {
        return invalid(format!("no header line (columns {})", COLUMNS.join(",")));
    }
    if points.is_empty() {
        return invalid("no points");
    }
    Ok(points)
}

/// Fields a record must have: up to the header's last named column.
fn text_width(cols: &[usize]) -> usize {
    cols.iter().copied().max().map_or(0, |m| m + 1)
}

/// "calibrated on N points from A, B".
pub fn label(points: &[Measured]) -> String {
    let mut sources: Vec<&str> = points.iter().map(|p| p.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    format!("calibrated on {} points from {}", points.len(), sources.join(", "))
}

/// Each point's estimator, built once; a prediction swaps in a machine with the parameters.
pub struct Predictor {
    cases: Vec<Case>,
}

struct Case {
    est: Estimator,
    base: Machine,
    dep: super::Deployment,
    context: usize,
}

impl Predictor {
    pub fn new(points: &[Measured]) -> Result<Predictor> {
        let mut profiles: Vec<(&'static str, Profile)> = Vec::new();
        let mut cases = Vec::new();
        for p in points {
            let sheet: Datasheet = analytical::datasheet(p.gpu)?;
            if !profiles.iter().any(|(k, _)| *k == sheet.key) {
                profiles.push((sheet.key, analytical::bundled_for(&sheet)?));
            }
            let profile = &profiles.iter().find(|(k, _)| *k == sheet.key).expect("just added").1;
            let opts =
                Options { batch: p.batch, gpus: Some(p.gpus), gpus_per_node: p.gpus.max(8), ..Options::default() };
            let at = |e: Error| Error::Format(format!("line {}: {e}", p.line));
            let est = Estimator::new(profile, "calibration", p.spec.clone(), opts).map_err(at)?;
            let (dep, _) = est.deployment(super::policy::Policy::KvCache, &[p.context]).map_err(at)?;
            let base = est.hw.machine.clone();
            cases.push(Case { est, base, dep, context: p.context });
        }
        Ok(Predictor { cases })
    }

    /// Predicted (J per output token, seconds per output token of one sequence) of point `i`.
    pub fn predict(&mut self, i: usize, p: &Params) -> Result<(f64, f64)> {
        let c = &mut self.cases[i];
        c.est.hw.machine = c.base.clone().calibrated(p, "the fit");
        c.est.hw.wait_watts = c.est.hw.machine.power.wait_watts.value;
        let step = c.est.decode_step(c.context, &c.dep)?;
        Ok((step.joules / c.est.opts.batch as f64, step.seconds))
    }
}

/// One measured value and its prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Residual {
    pub line: usize,
    pub model: String,
    pub gpus: usize,
    pub batch: usize,
    pub context: usize,
    /// "J/token" or "s/token".
    pub metric: &'static str,
    pub measured: f64,
    pub predicted: f64,
    /// ln(predicted / measured).
    pub log_error: f64,
}

/// A fit: its parameters and every residual.
#[derive(Debug, Clone, Serialize)]
pub struct Fit {
    pub params: Params,
    pub residuals: Vec<Residual>,
    /// Root mean square of the log errors.
    pub rms_log_error: f64,
    pub label: String,
}

impl Fit {
    pub fn applied(&self) -> Applied {
        Applied { params: self.params, label: self.label.clone() }
    }
}

fn residuals(pred: &mut Predictor, points: &[Measured], idx: &[usize], p: &Params) -> Result<Vec<Residual>> {
    let mut out = Vec::new();
    for &i in idx {
        let (j, s) = pred.predict(i, p)?;
        let m = &points[i];
        for (metric, measured, predicted) in [("J/token", m.j_per_token, j), ("s/token", m.s_per_token, s)] {
            if let Some(v) = measured {
                out.push(Residual {
                    line: m.line,
                    model: m.model.clone(),
                    gpus: m.gpus,
                    batch: m.batch,
                    context: m.context,
                    metric,
                    measured: v,
                    predicted,
                    log_error: (predicted / v).ln(),
                });
            }
        }
    }
    Ok(out)
}

/// The objective at unbounded coordinates `z` over the points `idx`.
fn objective(pred: &mut Predictor, points: &[Measured], idx: &[usize], z: &[f64; 4], z0: &[f64; 4]) -> f64 {
    let p = Params::from_z(z);
    let mut sum = 0.0;
    for &i in idx {
        let Ok((j, s)) = pred.predict(i, &p) else { return f64::INFINITY };
        let m = &points[i];
        for (measured, predicted) in [(m.j_per_token, j), (m.s_per_token, s)] {
            if let Some(v) = measured {
                sum += (predicted / v).ln().powi(2);
            }
        }
    }
    let prior: f64 = z.iter().zip(z0).map(|(a, b)| (a - b).powi(2)).sum();
    let v = sum + PRIOR_WEIGHT * prior;
    if v.is_finite() {
        v
    } else {
        f64::INFINITY
    }
}

/// Nelder–Mead on the four coordinates from `start`; deterministic.
fn nelder_mead(mut f: impl FnMut(&[f64; 4]) -> f64, start: [f64; 4]) -> ([f64; 4], f64) {
    let mut simplex: Vec<([f64; 4], f64)> = Vec::with_capacity(5);
    simplex.push((start, f(&start)));
    for k in 0..4 {
        let mut x = start;
        x[k] += 1.0;
        simplex.push((x, f(&x)));
    }
    let lerp = |a: &[f64; 4], b: &[f64; 4], t: f64| -> [f64; 4] { std::array::from_fn(|k| a[k] + t * (b[k] - a[k])) };
    for _ in 0..4000 {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[4].1);
        if (worst - best).abs() <= 1e-12 * (1.0 + best.abs()) {
            break;
        }
        let centroid: [f64; 4] = std::array::from_fn(|k| simplex[..4].iter().map(|s| s.0[k]).sum::<f64>() / 4.0);
        let w = simplex[4].0;
        let r = lerp(&centroid, &w, -1.0);
        let fr = f(&r);
        if fr < simplex[0].1 {
            let e = lerp(&centroid, &w, -2.0);
            let fe = f(&e);
            simplex[4] = if fe < fr { (e, fe) } else { (r, fr) };
        } else if fr < simplex[3].1 {
            simplex[4] = (r, fr);
        } else {
            let (c, fc) = if fr < simplex[4].1 {
                let c = lerp(&centroid, &w, -0.5);
                (c, f(&c))
            } else {
                let c = lerp(&centroid, &w, 0.5);
                (c, f(&c))
            };
            if fc < fr.min(simplex[4].1) {
                simplex[4] = (c, fc);
            } else {
                let b = simplex[0].0;
                for s in simplex.iter_mut().skip(1) {
                    s.0 = lerp(&b, &s.0, 0.5);
                    s.1 = f(&s.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex[0]
}

/// Fits the parameters to the points `idx` (all of them: `None`).
fn fit_on(pred: &mut Predictor, points: &[Measured], idx: &[usize]) -> Params {
    let z0 = Params::assumed().to_z();
    // Starts: the assumptions, and a slower, overhead-laden server (restarts keep Nelder-Mead off
    // a poor local minimum); the best result, restarted once from itself.
    let starts = [z0, [0.0, 0.0, -2.0, 0.0], [-1.0, -1.0, 0.0, 1.0]];
    let mut best: Option<([f64; 4], f64)> = None;
    for s in starts {
        let r = nelder_mead(|z| objective(pred, points, idx, z, &z0), s);
        if best.is_none_or(|b| r.1 < b.1) {
            best = Some(r);
        }
    }
    let (z, _) = best.expect("three starts");
    let (z, _) = nelder_mead(|z| objective(pred, points, idx, z, &z0), z);
    Params::from_z(&z)
}

/// Fits the machine's free parameters to every point.
pub fn fit(points: &[Measured]) -> Result<Fit> {
    let mut pred = Predictor::new(points)?;
    let all: Vec<usize> = (0..points.len()).collect();
    let params = fit_on(&mut pred, points, &all);
    let residuals = residuals(&mut pred, points, &all, &params)?;
    let rms = (residuals.iter().map(|r| r.log_error.powi(2)).sum::<f64>() / residuals.len() as f64).sqrt();
    Ok(Fit { params, residuals, rms_log_error: rms, label: label(points) })
}

/// How points are held out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Each point predicted by a fit on all the others.
    LeaveOneOut,
    /// Each model's points predicted by a fit on the other models' points.
    LeaveModelOut,
}

/// Predictions of held-out points.
#[derive(Debug, Clone, Serialize)]
pub struct HoldOut {
    pub scheme: Scheme,
    pub residuals: Vec<Residual>,
    /// Median of |ln(predicted / measured)| over the held-out values.
    pub median_abs_log_error: f64,
    pub max_abs_log_error: f64,
}

/// Refits without each point (or each model's points) and predicts what was left out.
pub fn hold_out(points: &[Measured], scheme: Scheme) -> Result<HoldOut> {
    let mut pred = Predictor::new(points)?;
    let groups: Vec<Vec<usize>> = match scheme {
        Scheme::LeaveOneOut => (0..points.len()).map(|i| vec![i]).collect(),
        Scheme::LeaveModelOut => {
            let mut models: Vec<&str> = points.iter().map(|p| p.model.as_str()).collect();
            models.sort_unstable();
            models.dedup();
            models.iter().map(|m| (0..points.len()).filter(|&i| points[i].model == *m).collect()).collect()
        }
    };
    if groups.len() < 2 {
        return invalid(format!("holding out needs two groups of points (models), not {}", groups.len()));
    }
    let mut res = Vec::new();
    for g in &groups {
        let rest: Vec<usize> = (0..points.len()).filter(|i| !g.contains(i)).collect();
        let p = fit_on(&mut pred, points, &rest);
        res.extend(residuals(&mut pred, points, g, &p)?);
    }
    res.sort_by_key(|r| (r.line, r.metric));
    let mut abs: Vec<f64> = res.iter().map(|r| r.log_error.abs()).collect();
    abs.sort_by(|a, b| a.total_cmp(b));
    let n = abs.len();
    let median = if n % 2 == 1 { abs[n / 2] } else { 0.5 * (abs[n / 2 - 1] + abs[n / 2]) };
    Ok(HoldOut { scheme, residuals: res, median_abs_log_error: median, max_abs_log_error: abs[n - 1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "model,gpu,gpus,batch,context,weight_dtype,j_per_token,s_per_token,source\n";

    #[test]
    fn csv_fields_and_quotes() {
        assert_eq!(fields("a, \"b,c\" ,\"d\"\"e\"").unwrap(), ["a", "b,c", "d\"e"]);
        assert!(fields("\"open").is_err());
    }

    #[test]
    fn parse_reads_points_and_names_bad_lines() {
        let ok = format!("# comment\n{HEAD}llama-3.1-70b,h100,4,16,2000,bf16,1.5,0.03,\"src, A\"\n");
        let p = parse(&ok, Path::new(".")).unwrap();
        assert_eq!((p[0].gpus, p[0].batch, p[0].context, p[0].line), (4, 16, 2000, 3));
        assert_eq!((p[0].j_per_token, p[0].s_per_token), (Some(1.5), Some(0.03)));
        assert_eq!(p[0].source, "src, A");
        let fp8 = format!("{HEAD}llama-3.1-405b,h100,8,16,2000,fp8,3,,s\n");
        assert_eq!(parse(&fp8, Path::new(".")).unwrap()[0].spec.bytes_per_param, 1.0);
        for (bad, why) in [
            ("model,gpu\nx,y\n", "no column"),
            (&format!("{HEAD}nope,h100,1,1,1,bf16,1,,s\n"), "neither a preset"),
            (&format!("{HEAD}llama-3.1-70b,a100,1,1,1,bf16,1,,s\n"), "unknown GPU"),
            (&format!("{HEAD}llama-3.1-70b,h100,0,1,1,bf16,1,,s\n"), "gpus must be"),
            (&format!("{HEAD}llama-3.1-70b,h100,1,1,1,bf16,-1,,s\n"), "j_per_token must be"),
            (&format!("{HEAD}llama-3.1-70b,h100,1,1,1,bf16,,,s\n"), "no measurement"),
            (&format!("{HEAD}llama-3.1-70b,h100,1,1,1,bf16,1,,\n"), "source"),
            (&format!("{HEAD}llama-3.1-70b,h100,1,1,1,int4,1,,s\n"), "weight_dtype"),
            (&format!("{HEAD}llama-3.1-70b,h100,1,1\n"), "fields"),
            (HEAD, "no points"),
        ] {
            let e = parse(bad, Path::new(".")).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    /// Points generated by the estimator itself at known parameters are fitted back: the fit
    /// recovers what the data determine and predicts held-out points.
    #[test]
    fn fit_recovers_generated_parameters() {
        let truth = Params { bandwidth: 0.62, flops: 0.45, step_overhead_s: 0.004, memory_power: 0.55 };
        let mut pts = Vec::new();
        let mut text = String::from(HEAD);
        for (model, gpus, dtype) in [("llama-3.1-70b", 4, "bf16"), ("llama-3.1-405b", 8, "fp8")] {
            for batch in [1, 8, 64, 256] {
                text.push_str(&format!("{model},h100,{gpus},{batch},1500,{dtype},1,1,gen\n"));
            }
        }
        pts.extend(parse(&text, Path::new(".")).unwrap());
        let mut pred = Predictor::new(&pts).unwrap();
        for (i, p) in pts.iter_mut().enumerate() {
            let (j, s) = pred.predict(i, &truth).unwrap();
            p.j_per_token = Some(j);
            p.s_per_token = Some(s);
        }
        let f = fit(&pts).unwrap();
        assert!(f.rms_log_error < 1e-3, "rms {}", f.rms_log_error);
        let (a, b) = (f.params, truth);
        assert!((a.bandwidth / b.bandwidth - 1.0).abs() < 0.01, "{a:?}");
        assert!((a.memory_power / b.memory_power - 1.0).abs() < 0.01, "{a:?}");
        assert!((a.step_overhead_s / b.step_overhead_s - 1.0).abs() < 0.02, "{a:?}");
        assert!((a.flops / b.flops - 1.0).abs() < 0.05, "{a:?}");
        let h = hold_out(&pts, Scheme::LeaveModelOut).unwrap();
        assert!(h.max_abs_log_error < 0.01, "{h:?}");
    }
}

//! Two profiles side by side: for every configuration (phase, mask, shape) both measured, the
//! ratios A ÷ B of seconds and joules per call. This is how a claim against a peer is made: ours ÷
//! peer, measured in one run on one GPU.

use crate::profile::{Phase, PointStatus, Profile};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub a: String,
    pub b: String,
    pub phase: Phase,
    /// The mask recipe's spelling (every parameter).
    pub mask: String,
    pub seq_q: usize,
    pub context: usize,
    pub seconds_a: f64,
    pub seconds_b: f64,
    /// seconds_a / seconds_b (below 1: A is faster).
    pub time_ratio: f64,
    pub joules_a: Option<f64>,
    pub joules_b: Option<f64>,
    pub joules_ratio: Option<f64>,
}

fn label(p: &crate::profile::Point) -> String {
    let name =
        if p.implementation == "attnjoule" { p.variant.clone() } else { format!("{}:{}", p.implementation, p.variant) };
    // A paged / fp8 / ragged point says so (`decode/kv=fp8/page=64`).
    name + &p.serving.key_suffix()
}

/// Ratios for every pair of measured points with the same phase, mask, shape and serving axes. `only_a` /
/// `only_b` restrict the variants considered on each side.
pub fn compare(a: &Profile, b: &Profile, only_a: Option<&str>, only_b: Option<&str>) -> Vec<Row> {
    let ok = |p: &&crate::profile::Point| matches!(p.status, PointStatus::Ok) && p.seconds.is_some();
    let mut rows = Vec::new();
    for pa in a.points.iter().filter(ok).filter(|p| only_a.is_none_or(|v| p.variant == v)) {
        for pb in b.points.iter().filter(ok).filter(|p| only_b.is_none_or(|v| p.variant == v)) {
            if pa.phase != pb.phase || pa.mask != pb.mask || pa.shape != pb.shape || pa.serving != pb.serving {
                continue;
            }
            let (sa, sb) = (pa.seconds.expect("filtered").median, pb.seconds.expect("filtered").median);
            let (ja, jb) = (pa.joules.map(|j| j.median), pb.joules.map(|j| j.median));
            rows.push(Row {
                a: label(pa),
                b: label(pb),
                phase: pa.phase,
                mask: pa.mask.to_string(),
                seq_q: pa.shape.seq_q,
                context: pa.shape.seq_k,
                seconds_a: sa,
                seconds_b: sb,
                time_ratio: sa / sb,
                joules_a: ja,
                joules_b: jb,
                joules_ratio: ja.zip(jb).map(|(x, y)| x / y),
            });
        }
    }
    rows.sort_by(|x, y| {
        (&x.a, &x.b, x.phase, &x.mask, x.seq_q, x.context).cmp(&(&y.a, &y.b, y.phase, &y.mask, y.seq_q, y.context))
    });
    rows
}

/// The ratio plot: time and joules ratios A ÷ B vs context (log-log), one line per (A, B, phase,
/// mask, seq_q) and quantity, with a reference line at 1.
pub fn plot(rows: &[Row], title: &str, path: &std::path::Path) -> crate::Result<()> {
    use crate::plot::{HLine, LinePlot, Series};
    let mut m: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for r in rows {
        let q = if r.phase == Phase::Decode { format!(" q={}", r.seq_q) } else { String::new() };
        let base = format!("{} ÷ {} {} {}{q}", r.a, r.b, r.phase, r.mask);
        m.entry(format!("time {base}")).or_default().push((r.context as f64, r.time_ratio));
        if let Some(j) = r.joules_ratio {
            m.entry(format!("joules {base}")).or_default().push((r.context as f64, j));
        }
    }
    let series = m
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect();
    let plot = LinePlot {
        title: title.into(),
        x_label: "context (keys)".into(),
        y_label: "ratio A ÷ B (below 1: A is faster / uses less energy)".into(),
        log_x: true,
        log_y: true,
        series,
        hlines: vec![HLine { y: 1.0, label: "parity".into() }],
        ..Default::default()
    };
    crate::files::write_atomic(path, plot.to_svg().as_bytes())
}

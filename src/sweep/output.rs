//! What a sweep leaves behind: the JSON profile, a CSV of its points, and plots.

use crate::error::{Error, Result};
use crate::profile::{Point, PointStatus, Profile};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Today's date in UTC, ISO (YYYY-MM-DD).
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// "1h02m03s" / "4m05s" / "6s".
pub fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, x) => format!("{x}s"),
        (0, m, x) => format!("{m}m{x:02}s"),
        (h, m, x) => format!("{h}h{m:02}m{x:02}s"),
    }
}

fn label(p: &Point) -> String {
    let s = &p.shape;
    let q = if s.seq_q != s.seq_k { format!(" q={}", s.seq_q) } else { String::new() };
    format!("{} {} {} ctx={}{q}", p.variant, p.phase, p.mask, s.seq_k)
}

/// One line about a finished point for the progress output.
pub fn summary(p: &Point) -> String {
    match &p.status {
        PointStatus::Ok => {
            let mut s = label(p);
            if let Some(t) = p.seconds {
                let _ = write!(s, ": {:.4} ms/call (cv {:.1}%)", t.median * 1e3, t.cv * 100.0);
            }
            if let Some(j) = p.joules {
                let _ = write!(s, ", {:.4} J/call", j.median);
            }
            if let Some(w) = p.watts {
                let _ = write!(s, ", {w:.0} W");
            }
            if let Some(t) = p.tflops() {
                let _ = write!(s, ", {t:.1} TFLOP/s");
            }
            if p.throttled {
                s.push_str(" [THROTTLED]");
            }
            if let (Some(c), None) = (&p.counters, p.seconds) {
                let _ = write!(
                    s,
                    ": emulated, {} warp instructions, {:.2} MB global loads, {:.2} MB stores, {} bank conflicts",
                    c.warp_instructions,
                    c.global_load_bytes as f64 / 1e6,
                    c.global_store_bytes as f64 / 1e6,
                    c.shared_bank_conflicts
                );
            }
            s
        }
        PointStatus::Infeasible { need_gib, have_gib } => {
            format!("{}: infeasible, needs {need_gib:.1} GiB of {have_gib:.1} GiB", label(p))
        }
        PointStatus::Failed { error } => format!("{}: FAILED: {error}", label(p)),
    }
}

/// An enum's serde (snake_case) name, as in the JSON profile.
fn snake<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:e}")).unwrap_or_default()
}

/// The points as CSV (one row each; empty cells where not measured).
pub fn csv(profile: &Profile) -> String {
    let mut s = String::from(
        "variant,implementation,phase,mask,batch,seq_q,seq_k,heads,kv_heads,head_dim,status,need_gib,error,\
         seconds_median,seconds_min,seconds_max,seconds_cv,joules_median,joules_cv,joules_above_idle_median,watts,\
         tflops,gbps,energy_method,throttled,calls,flops,min_bytes\n",
    );
    for p in &profile.points {
        let sh = &p.shape;
        let (status, need, err) = match &p.status {
            PointStatus::Ok => ("ok", String::new(), String::new()),
            PointStatus::Infeasible { need_gib, .. } => ("infeasible", format!("{need_gib:.3}"), String::new()),
            PointStatus::Failed { error } => ("failed", String::new(), error.replace(['"', '\n', ','], " ")),
        };
        let _ = writeln!(
            s,
            "{},{},{},\"{}\",{},{},{},{},{},{},{status},{need},\"{err}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{:e},{:e}",
            p.variant,
            p.implementation,
            p.phase,
            p.mask.to_string().replace('"', "'"),
            sh.batch,
            sh.seq_q,
            sh.seq_k,
            sh.heads,
            sh.kv_heads,
            sh.head_dim,
            opt(p.seconds.map(|x| x.median)),
            opt(p.seconds.map(|x| x.min)),
            opt(p.seconds.map(|x| x.max)),
            opt(p.seconds.map(|x| x.cv)),
            opt(p.joules.map(|x| x.median)),
            opt(p.joules.map(|x| x.cv)),
            opt(p.joules_above_idle.map(|x| x.median)),
            opt(p.watts),
            opt(p.tflops()),
            opt(p.gbps()),
            snake(&p.energy_method),
            p.throttled,
            p.calls.map(|c| c.to_string()).unwrap_or_default(),
            p.flops,
            p.min_bytes
        );
    }
    s
}

fn write(path: &Path, text: &str) -> Result<()> {
    crate::files::write_atomic(path, text.as_bytes())
}

/// Writes `<stem>.json`, `<stem>.csv` and the plots into `dir`; returns the files written.
pub fn write_all(profile: &Profile, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), err: e })?;
    let json = dir.join(format!("{stem}.json"));
    profile.save(&json)?;
    let csvp = dir.join(format!("{stem}.csv"));
    write(&csvp, &csv(profile))?;
    let mut files = vec![json, csvp];
    files.extend(plots(profile, dir, stem)?);
    Ok(files)
}

/// Series of (context, value) per variant and phase, for plots: only measured points.
pub fn series(profile: &Profile, value: impl Fn(&Point) -> Option<f64>) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut m: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for p in profile.points.iter().filter(|p| matches!(p.status, PointStatus::Ok)) {
        if let Some(v) = value(p) {
            let phase = p.phase;
            let q =
                if p.phase == crate::profile::Phase::Decode { format!(" q={}", p.shape.seq_q) } else { String::new() };
            let name = if p.implementation == "attnjoule" {
                format!("{} {phase} {}{q}", p.variant, p.mask)
            } else {
                format!("{}:{} {phase} {}{q}", p.implementation, p.variant, p.mask)
            };
            m.entry(name).or_default().push((p.context() as f64, v));
        }
    }
    m.into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (k, v)
        })
        .collect()
}

/// Time and joules per call vs context (log-log, a line per variant, phase and mask); returns
/// the files written. Emulated profiles have neither, so they get no plots.
pub fn plots(profile: &Profile, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    use crate::plot::{LinePlot, Series};
    let subtitle = Some(format!(
        "{} · {} · {:?} profile{}",
        profile.gpu.name,
        profile.created,
        profile.kind,
        profile.idle_watts.map(|w| format!(" · idle {w:.0} W")).unwrap_or_default()
    ));
    type Value = fn(&Point) -> Option<f64>;
    let charts: [(&str, &str, Value); 3] = [
        ("seconds", "seconds per call", |p| p.seconds.map(|s| s.median)),
        ("joules", "joules per call (board)", |p| p.joules.map(|s| s.median)),
        ("joules_above_idle", "joules per call above idle", |p| p.joules_above_idle.map(|s| s.median)),
    ];
    let mut files = Vec::new();
    for (name, y_label, f) in charts {
        let series: Vec<Series> =
            series(profile, f).into_iter().map(|(name, points)| Series { name, points }).collect();
        if series.is_empty() {
            continue;
        }
        let plot = LinePlot {
            title: format!("attention: {y_label} vs context"),
            x_label: "context (keys)".into(),
            y_label: y_label.into(),
            log_x: true,
            log_y: true,
            series,
            subtitle: subtitle.clone(),
            ..Default::default()
        };
        let path = dir.join(format!("{stem}-{name}.svg"));
        write(&path, &plot.to_svg())?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20415), (2025, 11, 23));
        assert_eq!(civil_from_days(11016), (2000, 2, 29));
        assert_eq!(hms(3723.0), "1h02m03s");
        assert_eq!(hms(65.0), "1m05s");
    }
}

//! Reading Nsight Compute CSV reports (`ncu --csv --page raw` wide form, or `--page details`
//! long form) for `attnjoule import-ncu`: the metrics a kernel engineer looks at first; and the one
//! call `attnjoule ncu` profiles ([`profile_call`]).

use super::PointSpec;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::{Attention, Options};
use std::collections::BTreeMap;

/// (our name, ncu raw metric names, ncu details-page label).
const METRICS: [(&str, &[&str], &str); 5] = [
    ("dram_throughput_pct", &["dram__throughput.avg.pct_of_peak_sustained_elapsed"], "DRAM Throughput"),
    ("sm_throughput_pct", &["sm__throughput.avg.pct_of_peak_sustained_elapsed"], "Compute (SM) Throughput"),
    (
        "tensor_pipe_pct",
        &[
            "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active",
            "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
            "sm__inst_executed_pipe_tensor_op_hmma.avg.pct_of_peak_sustained_active",
        ],
        "Tensor Pipe Utilization",
    ),
    ("achieved_occupancy_pct", &["sm__warps_active.avg.pct_of_peak_sustained_active"], "Achieved Occupancy"),
    ("duration_ns", &["gpu__time_duration.sum"], "Duration"),
];

/// The metric names to pass to `ncu --metrics` (one per line in profiles/ncu/README.md).
pub fn raw_metric_names() -> Vec<&'static str> {
    METRICS.iter().flat_map(|m| m.1.iter().copied()).collect()
}

/// The CSV rows of a report. ncu interleaves its own log lines (`==PROF== ...`) with the CSV,
/// whose every row starts with a quoted field: only those are read.
fn rows(text: &str) -> Result<Vec<csv::StringRecord>> {
    let table: String = text.lines().filter(|l| l.starts_with('"')).flat_map(|l| [l, "\n"]).collect();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(table.as_bytes())
        .records()
        .map(|r| r.map_err(|e| Error::Format(format!("ncu CSV: {e}"))))
        .collect()
}

fn number(s: &str) -> Option<f64> {
    s.trim().replace(',', "").parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Nanoseconds per `unit` of a duration, as ncu spells them ("nsecond", "usecond", "msecond",
/// "second", or the short forms); any other unit is an error, not a guess.
fn to_ns(unit: &str) -> Result<f64> {
    match unit.trim() {
        "nsecond" | "ns" => Ok(1.0),
        "usecond" | "us" => Ok(1e3),
        "msecond" | "ms" => Ok(1e6),
        "second" | "s" => Ok(1e9),
        u => {
            Err(Error::Format(format!("ncu CSV: duration in unit {u:?}; expected nsecond, usecond, msecond or second")))
        }
    }
}

/// `value` of metric `ours` in nanoseconds when it is the duration, else as it is.
fn scaled(ours: &str, value: f64, unit: &str) -> Result<f64> {
    Ok(if ours == "duration_ns" { value * to_ns(unit)? } else { value })
}

/// Longest kernel duration taken from a report: a day (anything longer is a misread unit).
const MAX_DURATION_NS: f64 = 86_400e9;

/// Each metric in its range: percentages in [0, 100], a duration positive and under a day.
fn check_ranges(launches: &[(String, BTreeMap<String, f64>)]) -> Result<()> {
    for (i, (kernel, m)) in launches.iter().enumerate() {
        for (name, &v) in m {
            let ok = if name == "duration_ns" { v > 0.0 && v <= MAX_DURATION_NS } else { (0.0..=100.0).contains(&v) };
            if !ok {
                let range = if name == "duration_ns" { "(0, 1 day]" } else { "[0, 100] %" };
                return Err(Error::Format(format!(
                    "ncu CSV: launch {i} ({kernel}): {name} {v} is outside {range}; is this an ncu report of \
                     attnjoule's metrics?"
                )));
            }
        }
    }
    Ok(())
}

/// Metrics per kernel launch (in report order): kernel name -> our metric name -> value, each
/// in its range (a percentage of -5, a duration of 0 or 1e300 s is refused).
pub fn parse_launches(text: &str) -> Result<Vec<(String, BTreeMap<String, f64>)>> {
    let launches = parse_launches_unchecked(text)?;
    check_ranges(&launches)?;
    Ok(launches)
}

fn parse_launches_unchecked(text: &str) -> Result<Vec<(String, BTreeMap<String, f64>)>> {
    let rows = rows(text)?;
    let Some(head) = rows.first() else {
        return Err(Error::Format("not an ncu CSV report (no quoted header line; use ncu --csv)".into()));
    };
    let col = |name: &str| head.iter().position(|h| h == name);
    let kernel_col =
        col("Kernel Name").ok_or_else(|| Error::Format("ncu CSV without a \"Kernel Name\" column".into()))?;
    let field = |r: &csv::StringRecord, c: Option<usize>| c.and_then(|c| r.get(c)).unwrap_or("").to_string();
    let mut launches: Vec<(String, BTreeMap<String, f64>)> = Vec::new();
    if let (Some(mn), Some(mv)) = (col("Metric Name"), col("Metric Value")) {
        // details page: one row per (launch, metric)
        let (unit_col, id_col) = (col("Metric Unit"), col("ID"));
        let mut last_id = None;
        for r in &rows[1..] {
            let id = id_col.and_then(|c| r.get(c));
            if launches.is_empty() || id != last_id {
                launches.push((field(r, Some(kernel_col)), BTreeMap::new()));
                last_id = id;
            }
            let (name, val) = (r.get(mn).unwrap_or(""), r.get(mv).and_then(number));
            for (ours, raw, label) in METRICS {
                if let Some(v) = val.filter(|_| raw.contains(&name) || label == name) {
                    let v = scaled(ours, v, &field(r, unit_col))?;
                    launches.last_mut().expect("pushed").1.entry(ours.to_string()).or_insert(v);
                }
            }
        }
    } else {
        // raw page: header, units row, one row per launch
        let units = rows.get(1).filter(|u| u.get(kernel_col).is_some_and(str::is_empty));
        for r in &rows[if units.is_some() { 2 } else { 1 }..] {
            let mut m = BTreeMap::new();
            for (ours, raw, _) in METRICS {
                if let Some((c, v)) =
                    raw.iter().find_map(|n| col(n).and_then(|c| r.get(c).and_then(number).map(|v| (c, v))))
                {
                    let unit = units.and_then(|u| u.get(c)).unwrap_or("");
                    m.insert(ours.to_string(), scaled(ours, v, unit)?);
                }
            }
            launches.push((field(r, Some(kernel_col)), m));
        }
    }
    Ok(launches)
}

/// The metrics of a report for one point: with one launch, its metrics; with several (the dense
/// variant's three kernels), `<kernel>:<metric>` for each plus duration-weighted means of the
/// percentages and the summed duration.
pub fn parse_report(text: &str) -> Result<BTreeMap<String, f64>> {
    let launches = parse_launches(text)?;
    let mut out = BTreeMap::new();
    if launches.len() == 1 {
        return Ok(launches.into_iter().next().expect("one").1);
    }
    let total_ns: f64 = launches.iter().filter_map(|(_, m)| m.get("duration_ns")).sum();
    for (ours, _, _) in METRICS {
        let vals: Vec<(f64, f64)> = launches
            .iter()
            .filter_map(|(_, m)| m.get(ours).map(|v| (*v, m.get("duration_ns").copied().unwrap_or(1.0))))
            .collect();
        if vals.is_empty() {
            continue;
        }
        let v = if ours == "duration_ns" {
            total_ns
        } else {
            let w: f64 = vals.iter().map(|x| x.1).sum();
            vals.iter().map(|(v, d)| v * d).sum::<f64>() / w
        };
        out.insert(ours.to_string(), v);
    }
    for (i, (k, m)) in launches.iter().enumerate() {
        let short = k.split('(').next().unwrap_or(k).trim();
        for (name, v) in m {
            out.insert(format!("{i}:{short}:{name}"), *v);
        }
    }
    Ok(out)
}

/// What [`profile_call`] ran.
#[derive(Debug, Clone)]
pub struct ProfiledCall {
    /// The NVTX range around the profiled call (`ncu --nvtx-include "<range>/"`).
    pub range: String,
    /// The plan's description.
    pub plan: String,
}

/// One call of `spec` on `dev` for Nsight Compute (`attnjoule ncu`): inputs from `seed`, outputs
/// poisoned, `warmup` calls outside any range (module loading and first-touch effects stay out of
/// the profiled launch), then one call inside the point's NVTX range. The buffers are freed on
/// return, errors included.
pub fn profile_call(dev: &dyn Device, spec: &PointSpec, warmup: u32, seed: u64) -> Result<ProfiledCall> {
    let opts = Options { sm_count: Some(dev.sm_count() as usize), ..Default::default() };
    let att = Attention::new(spec.variant, &spec.problem()?, &opts)?;
    let s = spec.shape;
    let q = crate::reference::random_bf16(s.q_elems(), seed);
    let k = crate::reference::random_bf16(s.kv_elems(), seed ^ 1);
    let v = crate::reference::random_bf16(s.kv_elems(), seed ^ 2);
    let bufs = att.alloc(dev, 1)?;
    att.upload_inputs(&bufs, 0, &q, &k, &v)?;
    att.poison_outputs(&bufs)?;
    for _ in 0..warmup {
        att.run(&bufs, 0)?;
    }
    dev.synchronize()?;
    let range = crate::nvtx::point_name(spec.variant.name(), spec.phase.name(), s.seq_k, s.seq_q);
    {
        let _r = crate::nvtx::range(&range);
        att.run(&bufs, 0)?;
        dev.synchronize()?;
    }
    Ok(ProfiledCall { range, plan: att.plan().description.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_page_with_units() {
        let csv = r#"==PROF== Connected to process
"ID","Process ID","Process Name","Host Name","Kernel Name","dram__throughput.avg.pct_of_peak_sustained_elapsed","gpu__time_duration.sum","sm__warps_active.avg.pct_of_peak_sustained_active"
"","","","","","%","usecond","%"
"0","1","attnjoule","h","attn_flash_fwd","71.5","1,234.5","44.25"
"#;
        let m = parse_report(csv).unwrap();
        assert_eq!(m["dram_throughput_pct"], 71.5);
        assert_eq!(m["duration_ns"], 1_234_500.0);
        assert_eq!(m["achieved_occupancy_pct"], 44.25);
        assert!(!m.contains_key("sm_throughput_pct"));
    }

    #[test]
    fn details_page_several_kernels() {
        let csv = r#""ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Section Name","Metric Name","Metric Unit","Metric Value"
"0","1","a","h","attn_dense_scores","1","7","GPU Speed Of Light Throughput","DRAM Throughput","%","10"
"0","1","a","h","attn_dense_scores","1","7","GPU Speed Of Light Throughput","Duration","ms","1"
"1","1","a","h","attn_dense_softmax","1","7","GPU Speed Of Light Throughput","DRAM Throughput","%","90"
"1","1","a","h","attn_dense_softmax","1","7","GPU Speed Of Light Throughput","Duration","ms","3"
"#;
        let m = parse_report(csv).unwrap();
        assert_eq!(m["duration_ns"], 4e6);
        assert_eq!(m["dram_throughput_pct"], (10.0 * 1.0 + 90.0 * 3.0) / 4.0);
        assert_eq!(m["1:attn_dense_softmax:dram_throughput_pct"], 90.0);
        assert!(parse_report("no csv here").is_err());
    }

    #[test]
    fn a_duration_in_an_unknown_unit_is_an_error() {
        // Both pages: "cycle" is no time unit; a missing one is no better than a guess.
        let raw = |unit: &str| {
            format!("\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\"\n\"\",\"\",\"{unit}\"\n\"0\",\"k\",\"5\"\n")
        };
        let details = |unit: &str| {
            format!(
                "\"ID\",\"Kernel Name\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n\"0\",\"k\",\"Duration\",\"{unit}\",\"5\"\n"
            )
        };
        for text in [raw("cycle"), raw(""), details("cycle"), details("")] {
            let e = parse_report(&text).unwrap_err().to_string();
            assert!(e.contains("duration in unit") && e.contains("expected nsecond"), "{e}");
        }
        assert_eq!(parse_report(&raw("nsecond")).unwrap()["duration_ns"], 5.0);
        assert_eq!(parse_report(&details("msecond")).unwrap()["duration_ns"], 5e6);
        // A quoted field holding the separator and an escaped quote (a templated kernel name).
        let csv = "\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\"\n\"\",\"\",\"usecond\"\n\"0\",\"f<1, \"\"x\"\">(int)\",\"2\"\n";
        let l = parse_launches(csv).unwrap();
        assert_eq!(l[0].0, "f<1, \"x\">(int)");
        assert_eq!(l[0].1["duration_ns"], 2000.0);
    }
}

//! Reading Nsight Compute CSV reports (`ncu --csv --page raw` wide form, or `--page details`
//! long form) for `attnjoule import-ncu`: the metrics a kernel engineer looks at first.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// (our name, ncu raw metric names, ncu details-page label).
const METRICS: [(&str, &[&str], &str); 5] = [
    ("dram_throughput_pct", &["dram__throughput.avg.pct_of_peak_sustained_elapsed"], "DRAM Throughput"),
    ("sm_throughput_pct", &["sm__throughput.avg.pct_of_peak_sustained_elapsed"], "Compute (SM) Throughput"),
    (
        "tensor_pipe_pct",
        &[
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

/// Splits one CSV line (double-quoted fields, "" escapes).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn number(s: &str) -> Option<f64> {
    s.trim().replace(',', "").parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Scale of a time unit to nanoseconds ("nsecond", "usecond", "us", "msecond", "ms", "second").
fn to_ns(unit: &str) -> f64 {
    match unit.trim() {
        "usecond" | "us" => 1e3,
        "msecond" | "ms" => 1e6,
        "second" | "s" => 1e9,
        _ => 1.0,
    }
}

/// Metrics per kernel launch (in report order): kernel name -> our metric name -> value.
pub fn parse_launches(text: &str) -> Result<Vec<(String, BTreeMap<String, f64>)>> {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('"')).collect();
    let Some(head) = lines.first() else {
        return Err(Error::Format("not an ncu CSV report (no quoted header line; use ncu --csv)".into()));
    };
    let head = fields(head);
    let col = |name: &str| head.iter().position(|h| h == name);
    let kernel_col =
        col("Kernel Name").ok_or_else(|| Error::Format("ncu CSV without a \"Kernel Name\" column".into()))?;
    let mut launches: Vec<(String, BTreeMap<String, f64>)> = Vec::new();
    if let (Some(mn), Some(mv)) = (col("Metric Name"), col("Metric Value")) {
        // details page: one row per (launch, metric)
        let unit_col = col("Metric Unit");
        let id_col = col("ID");
        let mut last_id = None;
        for l in &lines[1..] {
            let f = fields(l);
            let id = id_col.and_then(|c| f.get(c).cloned());
            if launches.is_empty() || id != last_id {
                launches.push((f.get(kernel_col).cloned().unwrap_or_default(), BTreeMap::new()));
                last_id = id;
            }
            let (name, val) = (f.get(mn).map(String::as_str).unwrap_or(""), f.get(mv).and_then(|v| number(v)));
            let unit = unit_col.and_then(|c| f.get(c)).map(String::as_str).unwrap_or("");
            for (ours, raw, label) in METRICS {
                if let Some(v) = val.filter(|_| raw.contains(&name) || label == name) {
                    let v = if ours == "duration_ns" { v * to_ns(unit) } else { v };
                    launches.last_mut().expect("pushed").1.entry(ours.to_string()).or_insert(v);
                }
            }
        }
    } else {
        // raw page: header, units row, one row per launch
        let units = lines.get(1).map(|l| fields(l)).unwrap_or_default();
        let has_units = units.get(kernel_col).is_some_and(|u| u.is_empty());
        for l in &lines[if has_units { 2 } else { 1 }..] {
            let f = fields(l);
            let mut m = BTreeMap::new();
            for (ours, raw, _) in METRICS {
                if let Some((c, v)) =
                    raw.iter().find_map(|r| col(r).and_then(|c| f.get(c).and_then(|v| number(v)).map(|v| (c, v))))
                {
                    let v = if ours == "duration_ns" {
                        v * to_ns(units.get(c).map(String::as_str).unwrap_or(""))
                    } else {
                        v
                    };
                    m.insert(ours.to_string(), v);
                }
            }
            launches.push((f.get(kernel_col).cloned().unwrap_or_default(), m));
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
}

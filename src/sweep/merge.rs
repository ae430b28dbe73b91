//! Joining shard outputs (JSONL logs or JSON profiles) into one profile. Shards of one sweep come
//! from the same GPU model and driver; mixing models, drivers or profile kinds is refused.

use super::{jsonl, point_key};
use crate::error::{Error, Result};
use crate::profile::{GemmPoint, Point, PointStatus, Profile, SCHEMA_VERSION};
use std::path::Path;

/// Loads a JSONL log (header required) or a JSON profile as a profile.
pub fn load_any(path: &Path) -> Result<(Profile, Vec<String>)> {
    if path.extension().is_some_and(|e| e == "jsonl") {
        // `jsonl::read` takes a missing log as empty (a sweep starting); here it is an error.
        if let Err(err) = std::fs::metadata(path) {
            return Err(Error::Io { path: path.display().to_string(), err });
        }
        let log = jsonl::read(path)?;
        let h =
            log.header.ok_or_else(|| Error::Format(format!("{}: no header line (not a sweep log)", path.display())))?;
        Ok((
            Profile {
                schema_version: SCHEMA_VERSION,
                kind: h.kind,
                gpu: h.gpu,
                created: h.created,
                tool: h.tool,
                peaks: None,
                idle_watts: h.idle_watts,
                points: log.points,
                gemm: log.gemm,
                notes: vec![],
            },
            log.warnings,
        ))
    } else {
        Ok((Profile::load(path)?, vec![]))
    }
}

fn rank(p: &Point) -> u8 {
    match p.status {
        PointStatus::Ok => 2,
        PointStatus::Infeasible { .. } => 1,
        PointStatus::Failed { .. } => 0,
    }
}

/// Merges profiles of one GPU model and driver. Duplicate points (the same key in two inputs)
/// keep the better status (ok > infeasible > failed), then the first.
pub fn merge(inputs: Vec<(String, Profile)>) -> Result<Profile> {
    let Some((first_name, first)) = inputs.first().cloned() else {
        return Err(Error::Invalid("merge needs at least one input".into()));
    };
    for (name, p) in &inputs[1..] {
        if p.kind != first.kind {
            return Err(Error::Invalid(format!(
                "refusing to merge a {:?} profile ({name}) with a {:?} one ({first_name})",
                p.kind, first.kind
            )));
        }
        if p.gpu.name != first.gpu.name {
            return Err(Error::Invalid(format!(
                "refusing to merge different GPU models: {:?} ({name}) vs {:?} ({first_name})",
                p.gpu.name, first.gpu.name
            )));
        }
        if p.gpu.driver != first.gpu.driver {
            return Err(Error::Invalid(format!(
                "refusing to merge different drivers: {:?} ({name}) vs {:?} ({first_name})",
                p.gpu.driver.as_deref().unwrap_or("unknown"),
                first.gpu.driver.as_deref().unwrap_or("unknown")
            )));
        }
    }
    let mut out = first.clone();
    out.points.clear();
    out.gemm.clear();
    out.notes.push(format!(
        "merged from {} inputs: {}",
        inputs.len(),
        inputs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
    ));
    let mut dups = 0;
    let mut idles = Vec::new();
    for (_, p) in &inputs {
        idles.extend(p.idle_watts);
        if p.created < out.created {
            out.created = p.created.clone();
        }
        for pt in &p.points {
            match out.points.get(&point_key(pt)) {
                Some(have) => {
                    dups += 1;
                    if rank(pt) > rank(have) {
                        out.points.insert(pt.clone());
                    }
                }
                None => {
                    out.points.insert(pt.clone());
                }
            }
        }
        for g in &p.gemm {
            if !out.gemm.iter().any(|x: &GemmPoint| (x.m, x.n, x.k) == (g.m, g.n, g.k)) {
                out.gemm.push(g.clone());
            }
        }
    }
    if dups > 0 {
        out.notes.push(format!("{dups} duplicate points across inputs (kept the best status of each)"));
    }
    out.idle_watts = crate::profile::Stat::from_samples(&idles).map(|s| s.median);
    Ok(out)
}

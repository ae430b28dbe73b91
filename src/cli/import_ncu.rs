//! `attnjoule import-ncu report.csv --profile P --point KEY`: attaches Nsight Compute metrics
//! (DRAM and SM throughput, tensor pipe utilization, achieved occupancy, duration) to one point.

use crate::cli::out::outln;

use attnjoule::profile::Profile;
use attnjoule::sweep::{ncu, point_key};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// `ncu --csv --page raw` (or `--page details`) output.
    report: PathBuf,
    /// The profile JSON to update (in place unless --out).
    #[arg(long)]
    profile: PathBuf,
    /// The point's key (as printed by --list), or a unique substring of it.
    #[arg(long)]
    point: Option<String>,
    /// List the profile's point keys and exit.
    #[arg(long)]
    list: bool,
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut prof = Profile::load(&a.profile)?;
    if let Some(out) = &a.out {
        attnjoule::files::refuse_overwrite("--out", out, &[&a.report])?;
    }
    if a.list {
        for p in &prof.points {
            outln!("{}", point_key(p));
        }
        return Ok(());
    }
    let Some(sel) = a.point.as_deref() else { anyhow::bail!("--point KEY is required (see --list)") };
    let matches: Vec<String> =
        prof.points.iter().map(point_key).filter(|k| k.to_lowercase().contains(&sel.to_lowercase())).collect();
    let key = match matches.as_slice() {
        [k] => k.clone(),
        [] => anyhow::bail!("no point matches {sel:?} (see --list)"),
        _ => anyhow::bail!("{} points match {sel:?}; give more of the key (see --list)", matches.len()),
    };
    // ncu reports of many launches and metrics run to megabytes; 256 MiB is far beyond one.
    let text = attnjoule::files::read_text(&a.report, 256 << 20, "ncu report")?;
    let metrics = ncu::parse_report(&text).map_err(|e| anyhow::anyhow!("{}: {e}", a.report.display()))?;
    if metrics.is_empty() {
        anyhow::bail!("{}: none of the attnjoule metrics found (see profiles/ncu/README.md)", a.report.display());
    }
    prof.points.modify(&key, |p| p.ncu.extend(metrics.iter().map(|(k, v)| (k.clone(), *v))));
    for (k, v) in &metrics {
        outln!("{k} = {v}");
    }
    let out = a.out.unwrap_or(a.profile);
    prof.save(&out)?;
    outln!("attached {} metrics to {key} in {}", metrics.len(), out.display());
    Ok(())
}

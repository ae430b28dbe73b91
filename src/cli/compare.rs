//! `attnjoule compare A B`: ratios A ÷ B of seconds and joules per call for every configuration
//! both profiles measured (ours ÷ a peer's, on one GPU).

use crate::cli::out::{errln, outln};

use attnjoule::sweep::{compare, merge};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    a: PathBuf,
    b: PathBuf,
    /// Only these variants of A (e.g. flash).
    #[arg(long)]
    variant_a: Option<String>,
    /// Only these variants of B (e.g. sdpa_flash).
    #[arg(long)]
    variant_b: Option<String>,
    /// Write the rows as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the ratio plot (SVG) here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    for (flag, out) in [("--csv", &a.csv), ("--plot", &a.plot)] {
        if let Some(out) = out {
            attnjoule::files::refuse_overwrite(flag, out, &[&a.a, &a.b])?;
        }
    }
    if a.csv.is_some() && a.csv == a.plot {
        anyhow::bail!("--csv and --plot name the same file; give each its own");
    }
    let (pa, _) = merge::load_any(&a.a)?;
    let (pb, _) = merge::load_any(&a.b)?;
    for (path, p) in [(&a.a, &pa), (&a.b, &pb)] {
        if p.kind == attnjoule::profile::ProfileKind::CpuDryRun {
            errln!("warning: {} is a {}", path.display(), p.kind.label());
        }
        if p.kind == attnjoule::profile::ProfileKind::Emulated {
            anyhow::bail!(
                "{} is an emulated profile (counters only, no seconds or joules); compare measured or analytical \
                 profiles",
                path.display()
            );
        }
    }
    if pa.gpu.name != pb.gpu.name {
        errln!("warning: comparing different GPUs ({} vs {})", pa.gpu.name, pb.gpu.name);
    }
    let rows = compare::compare(&pa, &pb, a.variant_a.as_deref(), a.variant_b.as_deref());
    if rows.is_empty() {
        anyhow::bail!("no configuration (phase, mask, shape) was measured in both profiles");
    }
    // Peer labels ("torch-2.15.0+cu132:sdpa_flash") are long: columns fit the longest.
    let wa = rows.iter().map(|r| r.a.len()).max().unwrap_or(0).max(1);
    let wb = rows.iter().map(|r| r.b.len()).max().unwrap_or(0).max(1);
    let wm = rows.iter().map(|r| r.mask.len()).max().unwrap_or(0).max(4);
    outln!(
        "{:<wa$} {:<wb$} {:<8} {:<wm$} {:>6} {:>9} {:>12} {:>12} {:>8} {:>8}",
        "A",
        "B",
        "phase",
        "mask",
        "q",
        "ctx",
        "A ms",
        "B ms",
        "time A/B",
        "J A/B"
    );
    let mut csv =
        String::from("a,b,phase,mask,seq_q,context,seconds_a,seconds_b,time_ratio,joules_a,joules_b,joules_ratio\n");
    for r in &rows {
        outln!(
            "{:<wa$} {:<wb$} {:<8} {:<wm$} {:>6} {:>9} {:>12.4} {:>12.4} {:>8.3} {:>8}",
            r.a,
            r.b,
            r.phase.to_string(),
            r.mask,
            r.seq_q,
            r.context,
            r.seconds_a * 1e3,
            r.seconds_b * 1e3,
            r.time_ratio,
            r.joules_ratio.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
        );
        let o = |x: Option<f64>| x.map(|v| format!("{v:e}")).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{},{:e},{:e},{:e},{},{},{}\n",
            r.a,
            r.b,
            r.phase,
            r.mask,
            r.seq_q,
            r.context,
            r.seconds_a,
            r.seconds_b,
            r.time_ratio,
            o(r.joules_a),
            o(r.joules_b),
            o(r.joules_ratio)
        ));
    }
    if let Some(p) = &a.csv {
        attnjoule::files::write_atomic(p, csv.as_bytes())?;
        outln!("wrote {}", p.display());
    }
    if let Some(p) = &a.plot {
        compare::plot(&rows, &format!("{} ÷ {}", a.a.display(), a.b.display()), p)?;
        outln!("wrote {}", p.display());
    }
    Ok(())
}

//! `attnjoule merge`: shard logs or profiles of one sweep into one profile.

use crate::cli::out::{errln, outln};
use attnjoule::sweep::{merge, output};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Shard files: points-shard*.jsonl logs or profile JSON files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The merged profile (JSON), written at exactly this path.
    #[arg(short, long, default_value = "profile.json")]
    out: PathBuf,
    /// Also write the merged points as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also write the plots (seconds and joules per call against context) into this folder.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let inputs: Vec<&Path> = a.inputs.iter().map(PathBuf::as_path).collect();
    attnjoule::files::refuse_overwrite("--out", &a.out, &inputs)?;
    if let Some(csv) = &a.csv {
        attnjoule::files::refuse_overwrite("--csv", csv, &inputs)?;
        if *csv == a.out {
            anyhow::bail!("--out and --csv name the same file; give each its own");
        }
    }
    let mut loaded = Vec::new();
    for path in &a.inputs {
        let (p, warnings) = merge::load_any(path)?;
        for w in warnings {
            errln!("warning: {w}");
        }
        loaded.push((path.display().to_string(), p));
    }
    let merged = merge::merge(loaded)?;
    merged.save(&a.out)?;
    let mut files = vec![a.out.clone()];
    if let Some(csv) = &a.csv {
        attnjoule::files::write_atomic(csv, output::csv(&merged).as_bytes())?;
        files.push(csv.clone());
    }
    if let Some(dir) = &a.plots {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        files.extend(output::plots(&merged, dir, "profile")?);
    }
    outln!(
        "{} points, {} GEMM points from {} inputs on {}",
        merged.points.len(),
        merged.gemm.len(),
        a.inputs.len(),
        merged.gpu.name
    );
    for f in files {
        outln!("wrote {}", f.display());
    }
    Ok(())
}

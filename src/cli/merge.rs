//! `attnjoule merge`: shard logs or profiles of one sweep into one profile.

use crate::cli::out::{errln, outln};

use attnjoule::sweep::{merge, output};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Shard files: points-shard*.jsonl logs or profile JSON files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The merged profile (a CSV is written beside it).
    #[arg(short, long, default_value = "profile.json")]
    out: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.out.is_dir() {
        anyhow::bail!("--out {} is a folder; give the merged profile's file name (e.g. profile.json)", a.out.display());
    }
    let mut inputs = Vec::new();
    for path in &a.inputs {
        let (p, warnings) = merge::load_any(path)?;
        for w in warnings {
            errln!("warning: {w}");
        }
        inputs.push((path.display().to_string(), p));
    }
    let merged = merge::merge(inputs)?;
    let dir = a.out.parent().filter(|d| !d.as_os_str().is_empty()).map(PathBuf::from).unwrap_or_else(|| ".".into());
    let stem = a.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "profile".into());
    let files = output::write_all(&merged, &dir, &stem)?;
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

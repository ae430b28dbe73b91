//! The Slurm templates' commands, run here as Slurm would run them (two array tasks, then the
//! dependent merge) on the emulator backend: every point of the sweep lands in exactly one shard,
//! and the merged profile holds them all once.

use attnjoule::profile::{PointStatus, Profile, ProfileKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_attnjoule");

fn template(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// Runs a template in `dir` (Slurm's submit folder) with these array variables.
fn sbatch(dir: &Path, name: &str, args: &[&str], array: Option<(usize, usize)>) -> Output {
    let mut c = Command::new("bash");
    c.arg(template(name)).args(args).env("ATTNJOULE", BIN).env("SLURM_SUBMIT_DIR", dir).env_remove("ATTNJOULE_SHARDS");
    for v in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"] {
        c.env_remove(v);
    }
    if let Some((task, count)) = array {
        c.env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", count.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "0");
    }
    let out = c.output().unwrap();
    println!(
        "{name} {args:?} {array:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn two_array_tasks_and_the_merge_on_the_emulator() {
    let dir = std::env::temp_dir().join(format!("attnjoule-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let flags = ["--backend", "emu", "--variants", "flash,decode", "--ctx", "64,128", "--heads", "2", "--seed", "5"];
    let args: Vec<&str> = std::iter::once("run1").chain(flags).collect();
    for task in 0..2 {
        assert!(sbatch(&dir, "slurm-sweep.sbatch", &args, Some((task, 2))).status.success());
    }
    let shards: Vec<Profile> =
        (0..2).map(|i| Profile::load(&dir.join(format!("run1/profile-shard{i}of2.json"))).unwrap()).collect();
    assert!(shards.iter().all(|s| s.points.len() == 2), "4 points in 2 shards");
    assert!(sbatch(&dir, "slurm-merge.sbatch", &["run1", "2"], None).status.success());
    let merged = Profile::load(&dir.join("run1/profile.json")).unwrap();
    assert_eq!(merged.kind, ProfileKind::Emulated);
    let keys: std::collections::HashSet<String> = merged.points.iter().map(attnjoule::sweep::point_key).collect();
    assert_eq!((merged.points.len(), keys.len()), (4, 4), "every point once");
    assert!(merged.points.iter().all(|p| matches!(p.status, PointStatus::Ok)), "{:?}", merged.points);
    // The unsharded sweep's points, exactly.
    let whole = Command::new(BIN).args(["sweep", "--dry-run"]).args(flags).output().unwrap();
    let whole = String::from_utf8_lossy(&whole.stdout);
    assert!(whole.contains("4 of 4 points"), "{whole}");

    // A task resubmitted alone resumes its shard's log: nothing measured twice.
    assert!(sbatch(&dir, "slurm-sweep.sbatch", &args, Some((1, 2))).status.success());
    assert!(sbatch(&dir, "slurm-merge.sbatch", &["run1", "2"], None).status.success());
    assert_eq!(Profile::load(&dir.join("run1/profile.json")).unwrap().points.len(), 4);

    // A missing shard: the merge keeps what is there and names what to resubmit.
    let args2: Vec<&str> = std::iter::once("run2").chain(flags).collect();
    assert!(sbatch(&dir, "slurm-sweep.sbatch", &args2, Some((0, 2))).status.success());
    let out = sbatch(&dir, "slurm-merge.sbatch", &["run2", "2"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("shards 1 of 2 have no log"), "{err}");
    assert_eq!(Profile::load(&dir.join("run2/profile.json")).unwrap().points.len(), 2);
    let out = sbatch(&dir, "slurm-merge.sbatch", &["run3", "2"], None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no shard log"));
    // Not an array task: one clear line.
    let out = sbatch(&dir, "slurm-sweep.sbatch", &args, None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not an array task"));
    let _ = std::fs::remove_dir_all(&dir);
}

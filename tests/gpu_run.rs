//! The prepared GPU run without a GPU: the default plan's dry run fits 6 minutes by its own
//! estimate, its steps cover every GPU test executable, the packing keeps the output within what a
//! lent machine returns (at most 8 files of 16 MiB, two folders deep: here 2 flat files), and a
//! run cut by its deadline continues where it stopped, also on a fresh machine from its pack.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_attnjoule");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-run.sh");
const MIB: u64 = 1 << 20;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnjoule-gpu-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn script(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(SCRIPT).args(args).env("ATTNJOULE", BIN);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_default_plan_fits_six_minutes_by_its_own_estimate() {
    let out = script(&["--dry-run", "--points"], &[]);
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let total: f64 =
        stdout.lines().find_map(|l| l.strip_prefix("total: ")?.split(' ').next()?.parse().ok()).expect("a total line");
    assert!(total > 60.0 && total <= 360.0, "the plan's estimate is {total} s");
    // Every point and every assumption is printed with a number and a source.
    assert!(stdout.contains("decode decode causal ctx=1048576 q=1") && stdout.contains("import torch"));
    // The same plan against a budget it cannot meet is refused in one line.
    let out = script(&["--dry-run", "--budget-s", "100"], &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.trim().lines().count() == 1 && err.contains("exceeds the budget"), "{err}");
}

#[test]
fn the_steps_cover_every_gpu_test_executable() {
    let out = Command::new(BIN).args(["gpu-run", "steps"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    let mut names = Vec::new();
    for l in lines.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 5, "{l}");
        let (cap, est): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        assert!(["fg", "bg", "join", "opt"].contains(&f[1]) && cap > est && est > 0.0, "{l}");
        assert!(f[0].chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)), "{l}");
        if f[0].starts_with("sweep-") {
            assert!(f[4].contains(r#"sweep --out "$W/sweep" --resume"#), "{l}");
        }
        names.push(f[0].to_string());
    }
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "step names are unique");
    let at = |n: &str| names.iter().position(|x| x == n).unwrap_or_else(|| panic!("no step {n}"));
    assert!(at("ceilings") == 0 && at("peer-check") < at("peers-flex") && at("sweep-decode") < at("peers-flex"));
    // A GPU test added in a new file must get its step (what scripts/gpu-bundle.sh carries).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(root.join("tests")).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "rs")
            && std::fs::read_to_string(&p).unwrap().contains("ignore = \"needs a CUDA GPU\"")
        {
            at(&format!("test-{}", p.file_stem().unwrap().to_string_lossy()));
        }
    }
    at("test-attnjoule-lib");
}

/// Every entry under `out`: (name, is a plain file, size).
fn entries(out: &Path) -> Vec<(String, bool, u64)> {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), m.is_file(), m.len())
        })
        .collect()
}

fn assert_returnable(out: &Path) {
    let es = entries(out);
    assert!(!es.is_empty() && es.len() <= 3, "{es:?}");
    for (name, file, size) in &es {
        assert!(*file, "{name}: flat files only");
        assert!(*size <= 16 * MIB, "{name}: {size} bytes");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{name}");
    }
}

fn tar_list(pack: &Path) -> String {
    let out = Command::new("tar").arg("-tJf").arg(pack).output().unwrap();
    assert!(out.status.success());
    text(&out.stdout)
}

#[test]
fn packing_an_emulated_run_fits_the_return_limits() {
    let dir = tempdir("pack");
    let w = dir.join("work");
    std::fs::create_dir_all(w.join("peers")).unwrap();
    std::fs::create_dir_all(w.join("logs")).unwrap();
    // Our sweep on the emulator (the run's folder layout), the peer script's CPU dry run, logs.
    let sweep = Command::new(BIN)
        .args(["sweep", "--backend", "emu", "--variants", "flash,decode", "--ctx", "64", "--heads", "2", "--seed", "3"])
        .arg("--out")
        .arg(w.join("sweep"))
        .output()
        .unwrap();
    assert!(sweep.status.success(), "{}", text(&sweep.stderr));
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peers-cpu-dryrun.json"),
        w.join("peers/peers-sdpa.json"),
    )
    .unwrap();
    std::fs::write(w.join("sweep/profile-seconds.svg"), "<svg></svg>").unwrap();
    std::fs::write(w.join("steps.tsv"), "test-flash\tok\t12\t17\nsweep-decode\tcut\t30\t43\nsweep-decode\tok\t9\t43\n")
        .unwrap();
    std::fs::write(
        w.join("logs/test-flash.log"),
        "running 1 test\ntest cuda_all_masks ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 12 \
         filtered out; finished in 3.1s\n",
    )
    .unwrap();
    let s = Command::new(BIN).args(["gpu-run", "summary"]).arg(&w).output().unwrap();
    let summary = text(&s.stdout);
    println!("{summary}");
    assert!(s.status.success(), "{}", text(&s.stderr));
    assert!(summary.contains("- test-flash: ok; 1 passed, 0 failed"), "{summary}");
    assert!(summary.contains("EMULATED") && !summary.contains("MEASURED"), "{summary}");
    assert!(summary.contains("| sweep-decode | ok | 39 | 43 |"), "a resumed step's seconds add up: {summary}");
    assert_eq!(summary.matches("not timed (emulator)").count(), 2, "one row per point: {summary}");
    assert!(summary.trim_end().lines().last().unwrap().starts_with("| decode |"), "the table comes last");

    // A small run packs whole.
    let out = dir.join("out");
    assert!(script(&["--pack", w.to_str().unwrap(), out.to_str().unwrap()], &[]).status.success());
    assert_returnable(&out);
    let list = tar_list(&out.join("attnjoule-gpu-run.tar.xz"));
    assert!(list.contains("./sweep/profile.json") && list.contains("./summary.md") && list.contains(".svg"), "{list}");
    assert_eq!(std::fs::read(out.join("summary.md")).unwrap(), std::fs::read(w.join("summary.md")).unwrap());

    // Incompressible Nsight reports, a huge log and deep folders: still two flat files, the
    // profile kept, what was left out named inside. (A 2 MiB limit instead of 15 MiB, so that
    // the test compresses megabytes of noise, not tens of them.)
    let limit = 2 * MIB;
    let mut noise = vec![0u8; 3 * MIB as usize];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let small = [("ATTNJOULE_PACK_MAX_BYTES", &*limit.to_string())];
    let pack = |w: &Path| script(&["--pack", w.to_str().unwrap(), out.to_str().unwrap()], &small).status.success();
    std::fs::write(w.join("ncu-flash.ncu-rep"), &noise).unwrap();
    std::fs::create_dir_all(w.join("a/b/c/d")).unwrap();
    std::fs::write(w.join("a/b/c/d/deep.txt"), "deep").unwrap();
    assert!(pack(&w));
    assert_returnable(&out);
    assert!(entries(&out).iter().all(|e| e.2 <= limit), "{:?}", entries(&out));
    let list = tar_list(&out.join("attnjoule-gpu-run.tar.xz"));
    assert!(list.contains("./sweep/profile.json") && list.contains("./packing-note.txt"), "{list}");
    assert!(!list.contains("ncu-rep") && !list.contains(".svg") && list.contains("deep.txt"), "{list}");
    // Logs too when nothing else helps.
    std::fs::write(w.join("logs/huge.log"), &noise).unwrap();
    std::fs::remove_file(w.join("ncu-flash.ncu-rep")).unwrap();
    assert!(pack(&w));
    assert!(entries(&out).iter().all(|e| e.2 <= limit), "{:?}", entries(&out));
    let list = tar_list(&out.join("attnjoule-gpu-run.tar.xz"));
    assert!(list.contains("./sweep/profile.json") && !list.contains("huge.log"), "{list}");
    // And the summaries alone when even that is too much.
    std::fs::write(w.join("sweep/noise.bin"), &noise).unwrap();
    assert!(pack(&w));
    assert!(entries(&out).iter().all(|e| e.2 <= limit), "{:?}", entries(&out));
    let list = tar_list(&out.join("attnjoule-gpu-run.tar.xz"));
    assert!(list.contains("sweep/profile.json") && list.contains("summary.md") && !list.contains("noise"), "{list}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_cut_by_its_deadline_continues_where_it_stopped() {
    let dir = tempdir("resume");
    let (w, out) = (dir.join("work"), dir.join("out"));
    // A fake plan in the binary's format: name, mode, cap, estimate, command.
    let plan = |slow: &str| {
        [
            "a\tfg\t30\t1\techo a-ran >> \"$W/a.txt\"",
            "peer-check\tbg\t30\t1\tsleep 1; echo mismatch; exit 1",
            "b\tfg\t30\t1\techo b-ran",
            &format!("slow\tjoin\t60\t1\t{slow}"),
            "peers-x\tfg\t30\t1\techo must not run",
            "c\tfg\t30\t1\techo c-ran >> \"$W/c.txt\"",
            "ncu-x\topt\t30\t500\techo optional",
        ]
        .join("\n")
            + "\n"
    };
    let plan_file = dir.join("plan.tsv");
    std::fs::write(&plan_file, plan("sleep 60")).unwrap();
    let run = |args: &[&str], deadline: &str| {
        let env = [
            ("ATTNJOULE_WORK", w.to_str().unwrap()),
            ("ATTNJOULE_PLAN", plan_file.to_str().unwrap()),
            ("ATTNJOULE_DEADLINE_S", deadline),
        ];
        let o = script(args, &env);
        println!("{}\n{}", text(&o.stdout), text(&o.stderr));
        o
    };
    // Long enough for the preflight and the quick steps on a loaded machine, too short for `slow`.
    let o = run(&[out.to_str().unwrap()], "20");
    assert!(o.status.success());
    let steps = std::fs::read_to_string(w.join("steps.tsv")).unwrap();
    assert!(steps.contains("slow\tcut\t"), "{steps}");
    assert!(steps.contains("peer-check\tfailed(rc=1)"), "{steps}");
    assert!(!w.join("c.txt").exists(), "no step starts after the deadline");
    assert!(text(&o.stdout).contains("steps left for a next call: slow peers-x c ncu-x"), "{}", text(&o.stdout));
    assert_returnable(&out);

    // A fresh machine: the work folder is gone; the returned pack carries the run on.
    let pack = dir.join("previous.tar.xz");
    std::fs::copy(out.join("attnjoule-gpu-run.tar.xz"), &pack).unwrap();
    std::fs::remove_dir_all(&w).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::write(&plan_file, plan("echo slow-ran")).unwrap();
    let o = run(&[out.to_str().unwrap(), "--resume-from", pack.to_str().unwrap()], "60");
    assert!(o.status.success());
    let steps = std::fs::read_to_string(w.join("steps.tsv")).unwrap();
    assert_eq!(std::fs::read_to_string(w.join("a.txt")).unwrap(), "a-ran\n", "done steps do not run again");
    assert_eq!(std::fs::read_to_string(w.join("c.txt")).unwrap(), "c-ran\n");
    assert!(steps.contains("slow\tok\t") && steps.contains("peers-x\tskipped: the peer check did not pass"), "{steps}");
    assert!(!steps.contains("ncu-x"), "an optional step whose estimate exceeds the time left does not start");
    assert!(text(&o.stdout).contains("steps left for a next call: ncu-x"), "{}", text(&o.stdout));
    assert_returnable(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

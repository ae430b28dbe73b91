//! The reproductions of a hostile user's session (issue 16), each now refused in one line (exit 1)
//! or done right; every subcommand piped into a reader that has already gone; two sweeps on one
//! log; a full disk (a file-size limit) during a profile write.

use attnjoule::profile::{Profile, ProfileKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_attnjoule");

fn bin() -> Command {
    Command::new(BIN)
}

fn tempdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `args`; must exit 1 within `secs` with one error line containing `needle` (a seed line
/// printed before it aside), and no panic.
fn refused_within(args: &[&str], needle: &str, secs: f64) -> String {
    let t = Instant::now();
    let out = bin().args(args).output().unwrap();
    let took = t.elapsed().as_secs_f64();
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("seed ")).collect();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {err}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: {err}");
    assert!(took < secs, "{args:?}: refused after {took:.1} s (limit {secs} s)");
    lines[0].to_string()
}

fn refused(args: &[&str], needle: &str) -> String {
    refused_within(args, needle, 20.0)
}

fn ok(args: &[&str]) -> Output {
    let out = bin().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    out
}

fn analytical(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    ok(&["estimate", "--write-analytical", p.to_str().unwrap()]);
    p
}

/// A small emulated sweep's arguments into `out` (a few points, seconds on two cores).
fn emu_sweep(out: &Path, ctx: &str) -> Vec<String> {
    ["sweep", "--backend", "emu", "--variants", "decode", "--heads", "1", "--head-dim", "64", "--ctx", ctx, "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// --- Panics and aborts -------------------------------------------------------------------

#[test]
fn huge_contexts_are_refused_before_the_sweep_starts() {
    let d = tempdir("ctx");
    let out = d.join("s");
    let o = out.to_str().unwrap();
    // Was: a panic in a worker ("min > max"), then 0 points and exit 0 with an empty profile.
    let e = refused(
        &[
            "sweep",
            "--backend",
            "emu",
            "--variants",
            "flash,dense,decode",
            "--ctx",
            "9223372036854775808,64,128",
            "--out",
            o,
        ],
        "32-bit",
    );
    assert!(e.contains("9223372036854775808"), "{e}");
    assert!(!out.join("profile.json").exists(), "nothing written");
    // Was: 49 s and 4.2 GB for one refused point; decode at 2^36 aborted on 64 GB.
    refused_within(
        &["sweep", "--backend", "emu", "--variants", "flash", "--ctx", "4294967296", "--out", o],
        "32-bit",
        5.0,
    );
    refused_within(
        &["sweep", "--backend", "emu", "--variants", "decode", "--ctx", "68719476736", "--out", o],
        "32-bit",
        5.0,
    );
    // The dry run refuses them the same way.
    refused_within(&["sweep", "--ctx", "4294967296", "--dry-run"], "32-bit", 5.0);
}

#[test]
fn mask_maps_are_bounded() {
    // Was: an abort on a 10 GB allocation.
    refused_within(&["mask", "--cells", "100000", "--seq", "100000"], "--cells", 5.0);
    let out = ok(&["mask", "--cells", "4096", "--seq", "4096", "--seq-k", "64", "--mask", "window:64"]);
    assert!(text(&out.stdout).lines().count() > 4096);
    // 4096 x 4096 cells of a plane of 2^27 tokens: each cell in O(1), in seconds.
    let t = Instant::now();
    ok(&["mask", "--cells", "4096", "--seq", "134217728", "--mask", "window:100000"]);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

// --- Hangs --------------------------------------------------------------------------------

#[test]
fn arguments_that_size_work_are_bounded() {
    // Was: still running after 400 s, 26 s, ...
    for a in [&["--tpm", "4000000"][..], &["--phrase", "1000000000"], &["--minutes", "100000"]] {
        let mut v = vec!["estimate", "--no-plot"];
        v.extend(a);
        refused_within(&v, "longest the estimator tabulates", 5.0);
    }
    // The longest conversation it takes is tabulated in about a second.
    let t = Instant::now();
    ok(&["estimate", "--no-plot", "--tpm", "33000"]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Was: thousands of threads; 4 GB and still running after 20 s.
    refused_within(&["emu", "--seq", "64", "--threads", "100000"], "threads", 5.0);
    refused_within(
        &["emu", "--variant", "decode", "--seq", "1", "--seq-k", "128", "--splits", "1000000"],
        "at most the 2 key tiles",
        5.0,
    );
}

// --- Silent wrong numbers -----------------------------------------------------------------

/// A change to a profile's JSON.
type Edit = dyn Fn(&mut serde_json::Value);

#[test]
fn profiles_out_of_range_are_refused_naming_the_field() {
    let d = tempdir("ranges");
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(analytical(&d, "a.json")).unwrap()).unwrap();
    let bad = |name: &str, f: &Edit| {
        let mut v = base.clone();
        f(&mut v);
        let p = d.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    };
    // Was: -25039 Wh, inf/NaN tables, a 7x wrong time.
    let cases: [(&str, &Edit, &str); 6] = [
        ("idle.json", &|v| v["idle_watts"] = (-500.0).into(), "idle_watts must not be negative"),
        ("peak.json", &|v| v["peaks"]["idle_watts"] = (-1.0).into(), "peaks.idle_watts"),
        ("heads.json", &|v| v["points"][3]["shape"]["heads"] = 0.into(), "points[3]"),
        ("dim.json", &|v| v["points"][0]["shape"]["head_dim"] = 0.into(), "head_dim must be at least 1"),
        ("secs.json", &|v| v["points"][1]["seconds"]["median"] = (-1.0).into(), "points[1]"),
        (
            "dup.json",
            &|v| {
                let p = v["points"][2].clone();
                v["points"].as_array_mut().unwrap().push(p);
            },
            "repeats the key of points[2]",
        ),
    ];
    for (name, f, needle) in cases {
        let p = bad(name, f);
        refused(&["estimate", "--no-plot", "--profile", &p], needle);
        refused(&["compare", &p, &p], needle);
    }
}

#[test]
fn model_sizes_do_not_overflow() {
    let d = tempdir("model");
    // Was: "KV cache: 0 MiB per token" (u32 overflow) and a 0 GiB recurrent state.
    let huge = d.join("huge.toml");
    std::fs::write(
        &huge,
        "name = \"huge\"\nlayers = 2\nd_model = 1024\nheads = 65536\nkv_heads = 65536\nhead_dim = 65536\nffn = 1024\n",
    )
    .unwrap();
    let out = ok(&["estimate", "--no-plot", "--model", huge.to_str().unwrap(), "--json", "--batch", "1"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kv_gib = v[0]["kv_gib_per_token"].as_f64().unwrap();
    // 2 (K, V) x 2 layers x 65536 heads x 65536 dims x 2 bytes = 32 GiB per token.
    assert_eq!(kv_gib, 32.0);
    let rec = d.join("rec.toml");
    std::fs::write(
        &rec,
        "name = \"rec\"\nlayers = 2\nd_model = 1024\nheads = 32\nkv_heads = 32\nhead_dim = 32768\nffn = 1024\n",
    )
    .unwrap();
    let out = ok(&[
        "estimate",
        "--no-plot",
        "--model",
        rec.to_str().unwrap(),
        "--json",
        "--batch",
        "1",
        "--policies",
        "recurrent",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let state = v[0]["rows"][0]["kv_gib"].as_f64().unwrap();
    // 2 layers x 32 heads x 32768^2 x 2 bytes = 128 GiB (or its share per GPU, replicas counted).
    assert!(state >= 128.0, "{state}");
    // TOML errors in one line (was: 5).
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nlayers = [1, 2\n").unwrap();
    refused(&["estimate", "--no-plot", "--model", bad.to_str().unwrap()], "line 2");
}

#[cfg(unix)]
#[test]
fn a_model_path_need_not_be_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempdir("utf8");
    let name = std::ffi::OsStr::from_bytes(b"m\xff.toml");
    let path = d.join(name);
    std::fs::write(
        &path,
        "name = \"tiny\"\nlayers = 2\nd_model = 256\nheads = 4\nkv_heads = 2\nhead_dim = 64\nffn = 512\n",
    )
    .unwrap();
    // Was: refused by the argument parser.
    let out = bin().args(["estimate", "--no-plot", "--model"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("model: tiny"));
}

#[test]
fn duplicate_points_are_impossible() {
    let d = tempdir("dups");
    // Was: each point measured and recorded twice.
    let out = ok(&[
        "sweep",
        "--backend",
        "emu",
        "--ctx",
        "64,64",
        "--variants",
        "flash,flash,decode",
        "--mask",
        "causal,causal",
        "--decode-tokens",
        "1,1",
        "--dry-run",
    ]);
    let t = text(&out.stdout);
    assert!(t.contains("2 of 2 points"), "{t}");
    let s = d.join("s");
    let mut a = emu_sweep(&s, "64,64");
    a.extend(["--decode-tokens".into(), "1,1".into()]);
    ok(&args(&a));
    let p = Profile::load(&s.join("profile.json")).unwrap();
    assert_eq!(p.points.len(), 1);
    // A duplicated log line (was: 3 points for 2 keys): one point per key, the later line.
    let log = s.join("points.jsonl");
    let lines = std::fs::read_to_string(&log).unwrap();
    let point = lines.lines().nth(1).unwrap().to_string();
    std::fs::write(&log, format!("{lines}{point}\n")).unwrap();
    let mut r = emu_sweep(&s, "64,128");
    r.push("--resume".into());
    ok(&args(&r));
    let p = Profile::load(&s.join("profile.json")).unwrap();
    assert_eq!(p.points.len(), 2, "{:?}", p.points.iter().map(|p| p.key()).collect::<Vec<_>>());
    // A log line of another shape is refused, naming its line (was: mixed in silently).
    let mut other: serde_json::Value = serde_json::from_str(&point).unwrap();
    other["point"]["shape"]["heads"] = 8.into();
    other["point"]["shape"]["kv_heads"] = 8.into();
    let lines = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, format!("{lines}{other}\n")).unwrap();
    let e = refused(&args(&r), "points.jsonl:");
    assert!(e.contains("heads 8 in a log of heads 1"), "{e}");
    // A point of a peer (another implementation) in our log: refused the same way.
    let mut peer: serde_json::Value = serde_json::from_str(&point).unwrap();
    peer["point"]["implementation"] = "torch-2.15".into();
    std::fs::write(&log, format!("{lines}{peer}\n")).unwrap();
    refused(&args(&r), "does not belong in a sweep log");
}

#[test]
fn retried_points_replace_the_failed_ones() {
    // A point that fails (a layout file removed), --resume --retry-failed with the file back,
    // then --resume: 2 points for 2 keys (was: 3).
    let d = tempdir("retry");
    let layout = d.join("l.json");
    std::fs::write(&layout, r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1], "col_idx": [0]}"#).unwrap();
    let s = d.join("s");
    let mut a = emu_sweep(&s, "64");
    a.extend(["--mask".into(), format!("causal,csr:{}", layout.display())]);
    ok(&args(&a));
    let p = Profile::load(&s.join("profile.json")).unwrap();
    assert_eq!(p.points.len(), 2);
    // Fail the csr point by hand in the log (as a vanished file would), then retry and resume.
    let log = s.join("points.jsonl");
    let t = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = t.lines().map(String::from).collect();
    let i = lines.iter().position(|l| l.starts_with("{\"point\"") && l.contains("csr:")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
    v["point"]["status"] = "failed".into();
    v["point"]["error"] = "the layout file changed".into();
    v["point"].as_object_mut().unwrap().remove("counters");
    lines.push(v.to_string());
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let mut retry = a.clone();
    retry.extend(["--resume".into(), "--retry-failed".into()]);
    ok(&args(&retry));
    let mut resume = a.clone();
    resume.push("--resume".into());
    ok(&args(&resume));
    let p = Profile::load(&s.join("profile.json")).unwrap();
    assert_eq!(p.points.len(), 2, "{:?}", p.points.iter().map(|p| p.key()).collect::<Vec<_>>());
    assert!(p.points.iter().all(|p| matches!(p.status, attnjoule::profile::PointStatus::Ok)));
}

#[test]
fn a_cpu_dry_run_is_never_measured() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peers-cpu-dryrun.json");
    // Written as "measured" by the peer script before the kind existed: read as a dry run.
    let p = Profile::load(&data).unwrap();
    assert_eq!(p.kind, ProfileKind::CpuDryRun);
    // Was: a table and plot labeled MEASURED.
    let e = refused(&["estimate", "--no-plot", "--profile", data.to_str().unwrap()], "CPU DRY RUN");
    assert!(!e.contains("MEASURED"), "{e}");
    // The peer script writes the kind itself now.
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/torch_attention.py"))
            .unwrap();
    assert!(script.contains("\"measured\" if cuda else \"cpu_dry_run\""));
}

// --- Lost or overwritten data --------------------------------------------------------------

#[test]
fn outputs_never_overwrite_inputs_and_go_exactly_where_asked() {
    let d = tempdir("outputs");
    let a = analytical(&d, "a.json");
    let before = std::fs::read(&a).unwrap();
    let s = a.to_str().unwrap();
    // Was: the input profile overwritten.
    refused(&["compare", s, s, "--csv", s], "is an input of this command");
    refused(&["compare", s, s, "--plot", s], "is an input of this command");
    refused(&["estimate", "--profile", s, "--plot", s], "is an input of this command");
    let dotted = d.join(".").join("a.json");
    refused(&["merge", s, "-o", dotted.to_str().unwrap()], "is an input of this command");
    assert_eq!(std::fs::read(&a).unwrap(), before, "the input is untouched");
    // -o writes exactly the path given (was: a.json beside a.csv; /dev/null.json).
    let csv = d.join("m.csv");
    ok(&["merge", s, "-o", csv.to_str().unwrap()]);
    assert!(Profile::load(&csv).is_ok() && !d.join("m.json").exists());
    let listing = |dir: &Path| {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        v.sort();
        v
    };
    assert_eq!(listing(&d), ["a.json", "m.csv"]);
    ok(&["merge", s, "-o", "/dev/null"]);
    assert!(!Path::new("/dev/null.json").exists());
    assert!(!std::fs::metadata("/dev/null").unwrap().is_file(), "/dev/null is still a device");
    // Each output has its own flag.
    let (j, c) = (d.join("j.json"), d.join("j.csv"));
    ok(&["merge", s, "-o", j.to_str().unwrap(), "--csv", c.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&c).unwrap().starts_with("variant,implementation"));
    // A sweep does not write into a folder that is not a sweep's (was: files written into /).
    refused(&["sweep", "--backend", "emu", "--ctx", "64", "--out", "/"], "holds other files");
    refused(&["sweep", "--backend", "emu", "--ctx", "64", "--out", d.to_str().unwrap()], "holds other files");
}

#[test]
fn ncu_imports_in_range_or_refused_and_the_profile_kept() {
    let d = tempdir("ncu");
    let a = analytical(&d, "a.json");
    let before = std::fs::read(&a).unwrap();
    let key = text(&ok(&["import-ncu", "/dev/null", "--profile", a.to_str().unwrap(), "--list"]).stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let report = |dram: &str, dur: &str, unit: &str| {
        let p = d.join("r.csv");
        std::fs::write(
            &p,
            format!(
                "\"ID\",\"Kernel Name\",\"dram__throughput.avg.pct_of_peak_sustained_elapsed\",\"gpu__time_duration.sum\"\n\
                 \"\",\"\",\"%\",\"{unit}\"\n\"0\",\"k\",\"{dram}\",\"{dur}\"\n"
            ),
        )
        .unwrap();
        p
    };
    // Was: "duration_ns": null written into the profile, which every command then refused.
    for (dram, dur, unit, needle) in [
        ("50", "1e300", "second", "duration_ns"),
        ("50", "-3", "nsecond", "duration_ns"),
        ("50", "0", "nsecond", "duration_ns"),
        ("-5", "10", "nsecond", "dram_throughput_pct"),
        ("1e26", "10", "nsecond", "dram_throughput_pct"),
    ] {
        let r = report(dram, dur, unit);
        refused(&["import-ncu", r.to_str().unwrap(), "--profile", a.to_str().unwrap(), "--point", &key], needle);
        assert_eq!(std::fs::read(&a).unwrap(), before, "the profile is untouched");
    }
    let r = report("50", "10", "usecond");
    ok(&["import-ncu", r.to_str().unwrap(), "--profile", a.to_str().unwrap(), "--point", &key]);
    let p = Profile::load(&a).unwrap();
    assert_eq!(p.points.get(&key).unwrap().ncu["duration_ns"], 10_000.0);
    // --out may not be the report it reads.
    refused(
        &[
            "import-ncu",
            r.to_str().unwrap(),
            "--profile",
            a.to_str().unwrap(),
            "--point",
            &key,
            "--out",
            r.to_str().unwrap(),
        ],
        "is an input",
    );
}

/// `bash -c` with a file-size limit of `kib` KiB, SIGXFSZ ignored (so a write past the limit
/// fails with EFBIG, as on a full disk, instead of killing the process).
fn with_file_limit(kib: u64, args: &[&str]) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    Command::new("bash")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec '{BIN}' {}", quoted.join(" ")))
        .output()
        .unwrap()
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_full_disk_during_a_profile_write_leaves_the_old_profile() {
    let d = tempdir("full");
    let a = analytical(&d, "a.json");
    let before = std::fs::read(&a).unwrap();
    assert!(before.len() > 60 << 10, "{}", before.len());
    let key = text(&ok(&["import-ncu", "/dev/null", "--profile", a.to_str().unwrap(), "--list"]).stdout)
        .lines()
        .nth(2)
        .unwrap()
        .to_string();
    let r = d.join("r.csv");
    std::fs::write(&r, "\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\"\n\"\",\"\",\"usecond\"\n\"0\",\"k\",\"2\"\n")
        .unwrap();
    // The rewrite needs more than 32 KiB: it fails midway (was: the profile left truncated).
    let out =
        with_file_limit(32, &["import-ncu", r.to_str().unwrap(), "--profile", a.to_str().unwrap(), "--point", &key]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().count() == 1 && err.contains("a.json") && err.contains("too large"), "{err}");
    assert_eq!(std::fs::read(&a).unwrap(), before, "the old profile is intact");
    assert!(temporaries(&d).is_empty(), "{:?}", temporaries(&d));
    // The same with room: written.
    let out = with_file_limit(
        1 << 20,
        &["import-ncu", r.to_str().unwrap(), "--profile", a.to_str().unwrap(), "--point", &key],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&a).unwrap(), before);
    // merge -o over an existing profile, and a sweep's final profile: the same rule.
    let m = d.join("m.json");
    std::fs::write(&m, "old").unwrap();
    let out = with_file_limit(16, &["merge", a.to_str().unwrap(), "-o", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&m).unwrap(), "old");
    assert!(temporaries(&d).is_empty());
}

#[test]
fn two_sweeps_on_one_log_the_second_refused() {
    let d = tempdir("lock");
    let s = d.join("s");
    // The first sweep: enough work to be running while the second starts (and past the lock's
    // short patience, files::LOCK_PATIENCE).
    let ctx: Vec<String> = (1..=16).map(|i| (1024 * i).to_string()).collect();
    let a = emu_sweep(&s, &ctx.join(","));
    let mut first = bin().args(args(&a)).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let log = s.join("points.jsonl");
    let t = Instant::now();
    while !log.exists() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(log.exists(), "the first sweep started");
    let mut r = a.clone();
    r.push("--resume".into());
    // Was: both wrote the log (2 of 5 points lost).
    let e = refused(&args(&r), "in use by another sweep");
    assert!(e.contains(s.to_str().unwrap()), "{e}");
    let st = first.wait().unwrap();
    assert!(st.success());
    let p = Profile::load(&s.join("profile.json")).unwrap();
    assert_eq!(p.points.len(), 16);
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(lines, 17, "a header and each point once");
    // Once the first is done, a resume goes through (nothing left to run).
    ok(&args(&r));
    // Shards share a folder, each with its own log and lock.
    let mut sh = emu_sweep(&d.join("shards"), "64,128");
    sh.extend(["--shard".into(), "0/2".into()]);
    ok(&args(&sh));
    sh.pop();
    sh.push("1/2".into());
    ok(&args(&sh));
}

// --- Minor -----------------------------------------------------------------------------------

#[test]
fn minor_ones() {
    let d = tempdir("minor");
    let o = d.join("s");
    let o = o.to_str().unwrap();
    // Was: exit 0 with every point failed (--heads 0 was refused up front already).
    refused(&["sweep", "--backend", "emu", "--batch", "0", "--ctx", "64", "--out", o], "batch must be at least 1");
    refused(
        &["sweep", "--backend", "emu", "--head-dim", "0", "--ctx", "64", "--out", o],
        "head_dim must be at least 1",
    );
    refused(&["sweep", "--backend", "emu", "--head-dim", "96", "--ctx", "64", "--out", o], "not compiled");
    // Was: an empty sweep with exit 0.
    refused(
        &["sweep", "--backend", "emu", "--variants", "decode", "--ctx", "64", "--decode-tokens", "65", "--out", o],
        "has no points",
    );
    // Was: "inf s to say".
    refused(&["estimate", "--no-plot", "--tpm", "1e-320"], "too slow");
    // Was: read until memory ran out.
    refused_within(&["estimate", "--no-plot", "--profile", "/dev/zero"], "not a profile", 5.0);
    refused_within(&["compare", "/dev/zero", "/dev/zero"], "not a profile", 5.0);
    let big = d.join("m.toml");
    std::fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
    refused_within(&["estimate", "--no-plot", "--model", big.to_str().unwrap()], "not a model file", 5.0);
}

// --- Outside code (run-ptx) ----------------------------------------------------------------

#[test]
fn run_ptx_sizes_are_bounded() {
    let d = tempdir("runptx");
    let funcs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outside/funcs.ptx");
    let f = funcs.to_str().unwrap();
    let base = |grid: &str, block: &str, buf: &str| -> Vec<String> {
        [f, "--entry", "weighted", "--grid", grid, "--block", block, "--arg", buf]
            .into_iter()
            .chain(["--arg", "buf:i32:8", "--arg", "i32:8", "--arg", "i32:8"])
            .map(String::from)
            .collect()
    };
    let run = |mut v: Vec<String>| {
        v.insert(0, "run-ptx".into());
        v
    };
    // A module or a buffer file that does not end is refused after a bounded read.
    refused_within(&["run-ptx", "/dev/zero", "--entry", "k", "--grid", "1", "--block", "1"], "not a PTX file", 5.0);
    refused_within(&args(&run(base("1", "8", "buf:i32:64:file=/dev/zero"))), "not a buffer file", 5.0);
    // Buffers beyond the address space or the machine: refused before anything is filled.
    refused_within(&args(&run(base("1", "8", "buf:i32:18446744073709551615"))), "buffer too large", 5.0);
    refused_within(&args(&run(base("1", "8", "buf:i32:100000000000:random"))), "cannot allocate", 5.0);
    // Grids and blocks beyond CUDA's limits (was: a capacity-overflow panic collecting 2^63
    // block results), and a grid within them that runs past --max-seconds.
    refused_within(&args(&run(base("4294967295,65535,65535", "8", "buf:i32:64:random"))), "a grid at most", 5.0);
    refused_within(&args(&run(base("1", "65536,65536,65536", "buf:i32:64:random"))), "1..=1024 threads", 5.0);
    let mut long = run(base("2147483647", "8", "buf:i32:64:random"));
    long.extend(["--max-seconds".into(), "1".into()]);
    refused_within(&args(&long), "stopped at its time limit", 10.0);
    // --dump may not replace the module or a buffer's file it reads.
    let input = d.join("arg0.npy");
    std::fs::copy(&funcs, &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let mut over = base("1", "8", "buf:i32:64:random");
    over[0] = input.display().to_string();
    over.extend(["--dump".into(), d.display().to_string()]);
    refused(&args(&run(over)), "is an input of this command");
    assert_eq!(std::fs::read(&input).unwrap(), before);
    // The same run into another folder works and writes its dumps whole.
    let out = d.join("out");
    let mut fine = run(base("1", "8", "buf:i32:64:random"));
    fine.extend(["--dump".into(), out.display().to_string()]);
    ok(&args(&fine));
    assert!(out.join("arg0.npy").exists() && out.join("arg1.npy").exists());
    assert!(temporaries(&out).is_empty());
}

/// The run's bounds live in `RunConfig::validate` (a library caller gets them too), not only in
/// the command line's parsers.
#[test]
fn run_bounds_are_checked_by_the_run() {
    use attnjoule::sweep::backend::{BackendKind, RunConfig};
    let ok = RunConfig { backend: BackendKind::Emu, ..Default::default() };
    ok.validate().unwrap();
    type Change = dyn Fn(&mut RunConfig);
    let bad: [(&str, &Change); 6] = [
        ("min_seconds", &|c| c.protocol.min_seconds = f64::INFINITY),
        ("reps", &|c| c.protocol.reps = 0),
        ("idle_seconds", &|c| c.idle_seconds = -1.0),
        ("idle gap", &|c| c.protocol.gap_min_s = f64::NAN),
        ("idle gap", &|c| (c.protocol.gap_min_s, c.protocol.gap_max_s) = (5.0, 1.0)),
        ("idle gap", &|c| c.protocol.gap_max_s = 1e9),
    ];
    for (needle, f) in bad {
        let mut c = ok.clone();
        f(&mut c);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(needle) && e.lines().count() == 1, "{e}");
    }
    // The parser refuses it first (an argument error: exit 1, one line).
    let out = bin().args(["sweep", "--backend", "emu", "--ctx", "64", "--gap", "5:1", "--dry-run"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().count() == 1 && err.contains("--gap"), "{err}");
}

// --- Closed pipes --------------------------------------------------------------------------

/// Runs `args` with standard output (and with `both`, standard error) a pipe whose reader has
/// already gone; returns the exit code and standard error (when kept).
fn into_closed_pipe(args: &[&str], both: bool, dir: &Path) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = bin();
    c.args(args).current_dir(dir).stdout(Stdio::from(writer.try_clone().unwrap()));
    if both {
        c.stderr(Stdio::from(writer));
        let st = c.status().unwrap();
        (st.code(), String::new())
    } else {
        drop(writer);
        let out = c.stderr(Stdio::piped()).output().unwrap();
        (out.status.code(), text(&out.stderr))
    }
}

#[test]
fn every_subcommand_into_a_closed_pipe() {
    let d = tempdir("pipe");
    let a = analytical(&d, "a.json");
    let s = a.to_str().unwrap();
    let run_dir = d.join("run");
    std::fs::create_dir_all(run_dir.join("sweep")).unwrap();
    std::fs::copy(&a, run_dir.join("sweep/profile.json")).unwrap();
    let key =
        text(&ok(&["import-ncu", "/dev/null", "--profile", s, "--list"]).stdout).lines().next().unwrap().to_string();
    let ncu = d.join("r.csv");
    std::fs::write(
        &ncu,
        "\"ID\",\"Kernel Name\",\"gpu__time_duration.sum\"\n\"\",\"\",\"usecond\"\n\"0\",\"k\",\"2\"\n",
    )
    .unwrap();
    let (ncu_s, run_s) = (ncu.to_str().unwrap().to_string(), run_dir.to_str().unwrap().to_string());
    // (arguments, the exit expected, files it must leave)
    let cases: Vec<(Vec<String>, i32, Vec<PathBuf>)> = vec![
        (vec!["info".into()], 0, vec![]),
        (vec!["--help".into()], 0, vec![]),
        (vec!["--version".into()], 0, vec![]),
        (vec!["sweep".into(), "--help".into()], 0, vec![]),
        (
            vec![
                "emu".into(),
                "--seq".into(),
                "64".into(),
                "--heads".into(),
                "1".into(),
                "--kv-heads".into(),
                "1".into(),
            ],
            0,
            vec![],
        ),
        (vec!["mask".into(), "--svg".into(), "m.svg".into()], 0, vec![d.join("m.svg")]),
        (vec!["mask".into(), "--json".into(), "--rows".into(), "--seq".into(), "4096".into()], 0, vec![]),
        (vec!["estimate".into(), "--plot".into(), "e.svg".into()], 0, vec![d.join("e.svg")]),
        (vec!["estimate".into(), "--csv".into(), "--no-plot".into()], 0, vec![]),
        (vec!["sweep".into(), "--dry-run".into()], 0, vec![]),
        (
            args(&emu_sweep(&d.join("sw"), "64,128")).iter().map(|s| s.to_string()).collect(),
            0,
            vec![d.join("sw/points.jsonl"), d.join("sw/profile.json"), d.join("sw/profile.csv")],
        ),
        (vec!["merge".into(), s.into(), "-o".into(), "m.json".into()], 0, vec![d.join("m.json")]),
        (
            vec![
                "compare".into(),
                s.into(),
                "m.json".into(),
                "--csv".into(),
                "c.csv".into(),
                "--plot".into(),
                "c.svg".into(),
            ],
            0,
            vec![d.join("c.csv"), d.join("c.svg")],
        ),
        (vec!["import-ncu".into(), ncu_s.clone(), "--profile".into(), s.into(), "--list".into()], 0, vec![]),
        (
            vec![
                "import-ncu".into(),
                ncu_s,
                "--profile".into(),
                s.into(),
                "--point".into(),
                key.clone(),
                "--out".into(),
                "i.json".into(),
            ],
            0,
            vec![d.join("i.json")],
        ),
        (vec!["gpu-run".into(), "plan".into(), "--points".into()], 0, vec![]),
        (vec!["gpu-run".into(), "steps".into()], 0, vec![]),
        (vec!["gpu-run".into(), "summary".into(), run_s], 0, vec![run_dir.join("summary.md")]),
        (
            [
                "run-ptx",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outside/funcs.ptx"),
                "--entry",
                "weighted",
                "--grid",
                "1",
                "--block",
                "8",
                "--arg",
                "buf:i32:64:random",
                "--arg",
                "buf:i32:8",
                "--arg",
                "i32:8",
                "--arg",
                "i32:8",
                "--dump",
                "dump",
            ]
            .map(String::from)
            .to_vec(),
            0,
            vec![d.join("dump/arg0.npy"), d.join("dump/arg1.npy")],
        ),
        // No GPU here: the error is still one line on a stderr that is there.
        (vec!["ncu".into(), "--variant".into(), "flash".into(), "--ctx".into(), "1024".into()], 1, vec![]),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (a, code, files) in &cases {
        seen.insert(a[0].clone());
        for both in [false, true] {
            for f in files {
                let _ = std::fs::remove_file(f);
            }
            let _ = std::fs::remove_dir_all(d.join("sw"));
            let argv: Vec<&str> = a.iter().map(String::as_str).collect();
            let (got, err) = into_closed_pipe(&argv, both, &d);
            let gpu_here = a[0] == "ncu" && attnjoule::device::cuda::probe().is_ok();
            if !gpu_here {
                assert_eq!(got, Some(*code), "{a:?} (stderr closed too: {both}): {err}");
            }
            assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{a:?}: {err}");
            if *code == 1 && !both {
                assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{a:?}: {err}");
            }
            for f in files {
                assert!(f.exists(), "{a:?} (stderr closed too: {both}): {} not written", f.display());
            }
            if a[0] == "sweep" && files.len() > 1 {
                assert_eq!(Profile::load(&d.join("sw/profile.json")).unwrap().points.len(), 2, "{a:?}");
            }
        }
    }
    // Every subcommand is in the list.
    for c in ["info", "emu", "run-ptx", "mask", "estimate", "sweep", "merge", "compare", "ncu", "import-ncu", "gpu-run"]
    {
        assert!(seen.contains(c), "{c} not piped");
    }
}

#[test]
fn a_full_stdout_is_an_error_in_one_line() {
    // Was: a panic ("failed printing to stdout"), exit 101.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = bin().arg("info").stdout(Stdio::from(full)).stderr(Stdio::piped()).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: writing standard output") && err.contains("No space left"), "{err}");
}

/// A worker that panics on one context (a bug), and measures the others instantly.
struct Panicky;

impl attnjoule::sweep::backend::Worker for Panicky {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Emulated
    }
    fn info(&self) -> attnjoule::profile::GpuInfo {
        attnjoule::profile::GpuInfo { name: "simulated".into(), ..Default::default() }
    }
    fn idle_watts(&self) -> Option<f64> {
        None
    }
    fn point(&mut self, spec: &attnjoule::sweep::PointSpec, _seed: u64) -> attnjoule::profile::Point {
        assert!(spec.shape.seq_k != 128, "a bug at 128 keys");
        attnjoule::sweep::backend::blank_point(spec, attnjoule::profile::PointStatus::Ok)
    }
    fn gemm(&mut self, _: usize, _: usize, _: usize) -> attnjoule::Result<attnjoule::profile::GemmPoint> {
        Err(attnjoule::Error::Invalid("no GEMM here".into()))
    }
}

#[test]
fn a_panicking_worker_costs_its_point_not_the_sweep() {
    use attnjoule::sweep::backend::{self, BackendKind, RunConfig, WorkerFactory};
    let d = tempdir("panic");
    let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let m = made.clone();
    let factory: WorkerFactory = std::sync::Arc::new(move |_, _| {
        m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(Panicky) as Box<dyn backend::Worker>)
    });
    let mut cfg = RunConfig { backend: BackendKind::Emu, out: Some(d.join("s")), gemm: vec![], ..Default::default() };
    cfg.spec.variants = vec![attnjoule::work::Variant::Decode];
    cfg.spec.contexts = vec![64, 128, 256];
    let mut lines = Vec::new();
    // Was: the worker thread died, 0 points, exit 0 with an empty profile.
    let out = backend::run_with(&cfg, factory, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!(out.profile.points.len(), 3);
    let failed: Vec<_> = out
        .profile
        .points
        .iter()
        .filter_map(|p| match &p.status {
            attnjoule::profile::PointStatus::Failed { error } => Some((p.context(), error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].0 == 128 && failed[0].1.contains("a bug at 128 keys"), "{failed:?}");
    assert_eq!(out.not_run, 0);
    assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 2, "the worker was made anew after the panic");
}

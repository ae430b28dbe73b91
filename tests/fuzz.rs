//! Fuzzing that stays: seeded, time-bounded mutation tests of every parser and reader (a few
//! seconds each). Each case is a mutated input; it must be read correctly or refused with an
//! error in one line, never panic or hang, and what is accepted must hold its invariants (a
//! profile or model file read must give an estimate of finite, non-negative numbers).
//!
//! Replay a failure with `ATTNJOULE_FUZZ_SEED=<seed>`; fuzz longer with
//! `ATTNJOULE_FUZZ_SECONDS=<s>` (per target). The `cargo fuzz` harness in fuzz/ drives the PTX
//! parser and the profile reader with coverage feedback (fuzz/README.md).

mod fuzzing;

use attnjoule::estimate::{self, model::ModelSpec, policy::ALL, Conversation, Options, RowStatus};
use attnjoule::mask::MaskRecipe;
use attnjoule::profile::Profile;
use fuzzing::{mutate_json, mutate_text, pick, Run, NUMBERS};
use rand::Rng;
use std::path::Path;
use std::time::Duration;

/// Budget of one target (seconds; ATTNJOULE_FUZZ_SECONDS scales it).
const SECONDS: f64 = 3.0;

/// An error is one line.
fn one_line(run: &Run, input: &[u8], e: &str) {
    if e.contains('\n') || e.is_empty() {
        run.fail(input, &format!("error not in one line: {e:?}"));
    }
}

/// One case's outcome: `Ok(None)` accepted and sound, `Ok(Some(e))` refused by the library,
/// `Err("BROKEN: ...")` an invariant broken (a failure), any other `Err` a refusal; every refusal
/// is one line.
fn judge(run: &mut Run, input: &[u8], res: Result<Option<String>, String>) {
    match res {
        Ok(refusal) => {
            run.accepted += 1;
            if let Some(e) = refusal {
                one_line(run, input, &e);
            }
        }
        Err(e) if e.starts_with("BROKEN") => run.fail(input, &e),
        Err(e) => one_line(run, input, &e),
    }
}

// ---------------------------------------------------------------------------------------------
// PTX: mutated PTX of the crate's own kernels lowers or fails with an error.

/// The PTX of every kernel entry, each with its module's header (version, target, module-level
/// declarations): one small module per entry.
fn ptx_entries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in attnjoule::kernels::MODULES {
        let starts: Vec<usize> = m.ptx.match_indices(".visible .entry").map(|(i, _)| i).collect();
        let Some(&first) = starts.first() else { continue };
        let header = &m.ptx[..first];
        for (k, &s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).copied().unwrap_or(m.ptx.len());
            let name = m.ptx[s..].split(['(', '\n']).next().unwrap_or("").to_string();
            out.push((format!("{}: {name}", m.name), format!("{header}{}", &m.ptx[s..e])));
        }
    }
    out
}

const PTX_WORDS: &[&str] = &[
    "%r1",
    "%r99999",
    "%rd4294967296",
    "%p0",
    "%f7",
    "%fd1",
    "%rs3",
    "%tid.x",
    "%ctaid.y",
    "%ntid.z",
    "%laneid",
    "mov.u32",
    "add.s32",
    "ld.shared.u32",
    "st.global.f32",
    "ld.param.u64",
    "bra.uni",
    "bra",
    "ret;",
    "exit;",
    "bar.sync 0;",
    "@%p1",
    "@!%p1",
    "setp.lt.s32",
    "selp.b32",
    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
    "ldmatrix.sync.aligned.m8n8.x4.shared.b16",
    "cp.async.cg.shared.global",
    "cp.async.wait_group 0;",
    "shfl.sync.bfly.b32",
    "cvt.rn.bf16x2.f32",
    "ex2.approx.ftz.f32",
    // Hopper's asynchronous forms (TMA, mbarrier, bulk copies, wgmma, clusters).
    "mbarrier.init.shared::cta.b64",
    "mbarrier.arrive.expect_tx.shared::cta.b64",
    "mbarrier.try_wait.parity.shared::cta.b64",
    "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes",
    "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes",
    "cp.async.bulk.wait_group.read 0;",
    "fence.proxy.async.shared::cta;",
    "elect.sync",
    "setmaxnreg.inc.sync.aligned.u32 240;",
    "wgmma.fence.sync.aligned;",
    "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16",
    "wgmma.wait_group.sync.aligned 0;",
    ".explicitcluster",
    ".reqnctapercluster 4294967296, 4294967296, 4294967296",
    ".maxntid 1024, 1, 1",
    ".reg .b32 %r<4294967295>;",
    ".reg .pred %p<0>;",
    ".shared .align 16 .b8 s[4294967296];",
    ".local .b8 l[99999999999];",
    "$L__BB0_1",
    "$L__BB0_1:",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ";",
    ",",
    "+",
    "-",
    ".b32",
    ".u64",
    ".f64",
    ".pred",
    ".v4",
    ".param",
    "0f7F800000",
    "0d7FF8000000000000",
    "0xffffffff",
    "//",
    "/*",
    "*/",
];

#[test]
fn mutated_ptx_lowers_or_fails_with_an_error() {
    let entries = ptx_entries();
    assert!(entries.len() >= 10, "the crate's kernels: {} entries", entries.len());
    // Most cases on the smaller entries (more cases per second), every entry reachable.
    let mut sizes: Vec<usize> = entries.iter().map(|(_, t)| t.len()).collect();
    sizes.sort_unstable();
    let small = sizes[sizes.len() / 2];
    let mut run = Run::new("ptx", SECONDS * 2.0, 100_000);
    let mut lowered = 0usize;
    while run.more() {
        let (name, text) = loop {
            let e = &entries[run.rng.random_range(0..entries.len())];
            if e.1.len() <= small || run.rng.random_bool(0.1) {
                break e;
            }
        };
        let input = mutate_text(&mut run.rng, text.as_bytes(), PTX_WORDS);
        let src = String::from_utf8_lossy(&input).into_owned();
        let outcome = run.guard(&input, Duration::from_secs(20), move || {
            // As the user sees it: the emulator's typed error.
            attnjoule::emu::parse::lower_module(&src)
                .into_values()
                .map(|k| k.map(|_| ()).map_err(|e| attnjoule::Error::Emu(e.to_string()).to_string()))
                .collect::<Vec<_>>()
        });
        for r in &outcome {
            match r {
                Ok(()) => lowered += 1,
                Err(e) => one_line(&run, format!("{name}\n{}", String::from_utf8_lossy(&input)).as_bytes(), e),
            }
        }
        if outcome.iter().any(|r| r.is_ok()) {
            run.accepted += 1;
        }
    }
    println!("ptx: {lowered} entries lowered in {} mutated modules", run.cases);
    run.report();
}

// ---------------------------------------------------------------------------------------------
// Profiles: read and valid, or refused in one line; an accepted one gives a sound estimate.

const RECIPES: &[&str] = &[
    "causal",
    "none",
    "window:4096",
    "window:0",
    "longformer:64:1:1",
    "bigbird:64:2:2:3:0",
    "strided:64:1:4",
    "csr:x.json#0123456789abcdef",
    "",
    "flash",
    "decode",
    "dense",
    "prefill",
    "measured",
    "analytical",
    "emulated",
    "cpu_dry_run",
    "ok",
    "failed",
    "infeasible",
    "attnjoule",
    "sdpa_flash",
    "\u{0}",
    "é",
];

/// Every number a report shows is finite and not negative (an attention share at most 1).
fn sound_report(r: &estimate::Report) -> Result<(), String> {
    for row in &r.rows {
        let vals = [
            ("seconds_per_phrase", row.seconds_per_phrase),
            ("joules_per_token", row.joules_per_token),
            ("wh_per_phrase", row.wh_per_phrase),
            ("attention_share", row.attention_share),
            ("cumulative_wh", row.cumulative_wh),
            ("kv_gib", Some(row.kv_gib)),
            ("mem_gib_per_gpu", Some(row.mem_gib_per_gpu)),
        ];
        for (k, v) in vals {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("{} minute {}: {k} = {v}", row.policy.name(), row.minute));
                }
            }
        }
        if row.attention_share.is_some_and(|a| a > 1.0 + 1e-9) {
            return Err(format!("{} minute {}: attention share above 1", row.policy.name(), row.minute));
        }
        if matches!(row.status, RowStatus::Ok) && row.wh_per_phrase.is_none() {
            return Err(format!("{} minute {}: ok without a number", row.policy.name(), row.minute));
        }
    }
    for c in &r.curves {
        if c.points.iter().any(|(m, w)| !(m.is_finite() && w.is_finite() && *w >= 0.0)) {
            return Err(format!("{}: a plot point not finite", c.policy.name()));
        }
    }
    Ok(())
}

fn base_profiles() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = ["profiles/h100-sxm-analytical.json", "tests/data/peers-cpu-dryrun.json"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .collect();
    // A measured-looking profile: the analytical one relabeled, few points (faster cases).
    let mut a: serde_json::Value = serde_json::from_str(&v[0]).unwrap();
    a["kind"] = "measured".into();
    a["idle_watts"] = 70.0.into();
    if let Some(p) = a["points"].as_array_mut() {
        p.truncate(24);
    }
    a["gemm"] = serde_json::json!([{"m": 4096, "n": 4096, "k": 4096, "energy_method": "counter",
        "seconds": {"median": 2e-4, "min": 1.9e-4, "max": 2.1e-4, "cv": 0.01, "n": 5},
        "joules": {"median": 0.1, "min": 0.09, "max": 0.11, "cv": 0.01, "n": 5}}]);
    v.push(a.to_string());
    v
}

#[test]
fn mutated_profiles_are_read_soundly_or_refused() {
    let bases = base_profiles();
    let mut run = Run::new("profiles", SECONDS, 5_000);
    let model = estimate::model::preset("llama-3.1-70b").unwrap();
    while run.more() {
        let base = &bases[run.rng.random_range(0..bases.len())];
        let input = if run.rng.random_bool(0.75) {
            let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
            mutate_json(&mut run.rng, &mut v, RECIPES);
            v.to_string().into_bytes()
        } else {
            mutate_text(&mut run.rng, base.as_bytes(), RECIPES)
        };
        let text = String::from_utf8_lossy(&input).into_owned();
        let m = model.clone();
        let res = run.guard(&input, Duration::from_secs(20), move || -> Result<Option<String>, String> {
            let p = Profile::from_json(&text).map_err(|e| e.to_string())?;
            // What was read writes back and reads again the same.
            let again = Profile::from_json(&p.to_json()).map_err(|e| format!("BROKEN: not read back: {e}"))?;
            if again != p {
                return Err("BROKEN: differs after a round trip".into());
            }
            if !p.kind.has_gpu_numbers() {
                return Ok(None);
            }
            match estimate::estimate(&p, "fuzz", m, &Conversation::default(), Options::default(), &ALL) {
                Ok(r) => sound_report(&r).map(|_| None).map_err(|e| format!("BROKEN: {e}")),
                Err(e) => Ok(Some(e.to_string())),
            }
        });
        judge(&mut run, &input, res);
    }
    run.report();
}

// ---------------------------------------------------------------------------------------------
// Model files (TOML and JSON).

#[test]
fn mutated_model_files_are_read_soundly_or_refused() {
    let profile = estimate::analytical::h100_sxm();
    let bases: Vec<(bool, String)> = estimate::model::PRESETS
        .iter()
        .flat_map(|n| {
            let m = estimate::model::preset(n).unwrap();
            [(true, toml::to_string(&m).unwrap()), (false, serde_json::to_string_pretty(&m).unwrap())]
        })
        .collect();
    let words: Vec<&str> =
        NUMBERS.iter().copied().chain(["=", "[", "]", "\"", "layers", "heads", "moe", "{}"]).collect();
    let mut run = Run::new("models", SECONDS, 5_000);
    while run.more() {
        let (toml, base) = &bases[run.rng.random_range(0..bases.len())];
        let input = if !toml && run.rng.random_bool(0.6) {
            let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
            mutate_json(&mut run.rng, &mut v, &["", "x", "dense-1t"]);
            v.to_string().into_bytes()
        } else {
            mutate_text(&mut run.rng, base.as_bytes(), &words)
        };
        let (text, toml, profile) = (String::from_utf8_lossy(&input).into_owned(), *toml, profile.clone());
        let res = run.guard(&input, Duration::from_secs(20), move || -> Result<Option<String>, String> {
            let m = if toml { ModelSpec::from_toml(&text) } else { ModelSpec::from_json(&text) };
            let m = m.map_err(|e| e.to_string())?;
            for (k, v) in [("kv bytes per token", m.kv_bytes_per_token()), ("weights", m.weight_bytes())] {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!("BROKEN: {k} = {v}"));
                }
            }
            match estimate::estimate(&profile, "fuzz", m, &Conversation::default(), Options::default(), &ALL) {
                Ok(r) => sound_report(&r).map(|_| None).map_err(|e| format!("BROKEN: {e}")),
                Err(e) => Ok(Some(e.to_string())),
            }
        });
        judge(&mut run, &input, res);
    }
    run.report();
}

// ---------------------------------------------------------------------------------------------
// Calibration files (`estimate --calibration`).

#[test]
fn mutated_calibration_files_predict_soundly_or_are_refused() {
    use estimate::calibrate::{self, Params, Predictor};
    let base =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/calibration/h100-serving.csv")).unwrap();
    let words: Vec<&str> = NUMBERS
        .iter()
        .copied()
        .chain([",", "\"", "\n", "#", "fp8", "h200", "llama-3.1-8b", "deepseek-v3", "input_tokens", "x.toml"])
        .collect();
    let mut run = Run::new("calibration", SECONDS, 5_000);
    // Files read and predicted whole: the mutations must leave many of them valid.
    let predicted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    while run.more() {
        let input = mutate_text(&mut run.rng, base.as_bytes(), &words);
        let text = String::from_utf8_lossy(&input).into_owned();
        let accepted_files = predicted.clone();
        let res = run.guard(&input, Duration::from_secs(20), move || -> Result<Option<String>, String> {
            // Model files resolve next to the shipped file (the Qwen3 rows name them).
            let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/calibration"));
            let points = match calibrate::parse(&text, dir) {
                Ok(p) => p,
                Err(e) => return Ok(Some(e.to_string())),
            };
            let mut pred = match Predictor::new(&points) {
                Ok(p) => p,
                Err(e) => return Ok(Some(e.to_string())),
            };
            let prompts = vec![512.0; pred.unknown_prompts.len()];
            accepted_files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for i in 0..points.len() {
                match pred.predict(&points, i, &Params::assumed(), &prompts) {
                    Ok((j, s)) if j.is_finite() && j > 0.0 && s.is_finite() && s > 0.0 => {}
                    Ok(v) => return Err(format!("BROKEN: point {i} predicted {v:?}")),
                    Err(e) => return Ok(Some(e.to_string())),
                }
            }
            Ok(None)
        });
        judge(&mut run, &input, res);
    }
    run.report();
    let n = predicted.load(std::sync::atomic::Ordering::Relaxed);
    println!("calibration: {n} mutated files read and every point predicted");
    assert!(n >= 100, "only {n} mutated files were valid: the target tests refusals alone");
}

// ---------------------------------------------------------------------------------------------
// Nsight Compute CSV reports.

const NCU_RAW: &str = "==PROF== Connected to process
\"ID\",\"Process ID\",\"Process Name\",\"Host Name\",\"Kernel Name\",\"dram__throughput.avg.pct_of_peak_sustained_elapsed\",\"gpu__time_duration.sum\",\"sm__warps_active.avg.pct_of_peak_sustained_active\",\"sm__throughput.avg.pct_of_peak_sustained_elapsed\"
\"\",\"\",\"\",\"\",\"\",\"%\",\"usecond\",\"%\",\"%\"
\"0\",\"1\",\"attnjoule\",\"h\",\"attn_flash_fwd\",\"71.5\",\"1,234.5\",\"44.25\",\"12\"
\"1\",\"1\",\"attnjoule\",\"h\",\"attn_decode_combine(int)\",\"11.5\",\"4.5\",\"4.25\",\"2\"
";

const NCU_DETAILS: &str = "\"ID\",\"Process ID\",\"Process Name\",\"Host Name\",\"Kernel Name\",\"Context\",\"Stream\",\"Section Name\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"
\"0\",\"1\",\"a\",\"h\",\"attn_dense_scores\",\"1\",\"7\",\"GPU Speed Of Light Throughput\",\"DRAM Throughput\",\"%\",\"10\"
\"0\",\"1\",\"a\",\"h\",\"attn_dense_scores\",\"1\",\"7\",\"GPU Speed Of Light Throughput\",\"Duration\",\"msecond\",\"1\"
\"1\",\"1\",\"a\",\"h\",\"attn_dense_softmax\",\"1\",\"7\",\"GPU Speed Of Light Throughput\",\"DRAM Throughput\",\"%\",\"90\"
\"1\",\"1\",\"a\",\"h\",\"attn_dense_softmax\",\"1\",\"7\",\"Occupancy\",\"Achieved Occupancy\",\"%\",\"33\"
\"1\",\"1\",\"a\",\"h\",\"attn_dense_softmax\",\"1\",\"7\",\"GPU Speed Of Light Throughput\",\"Duration\",\"usecond\",\"3\"
";

#[test]
fn mutated_ncu_reports_give_metrics_in_range_or_are_refused() {
    let words: Vec<&str> = NUMBERS
        .iter()
        .copied()
        .chain(["\"", "\",\"", "%", "nsecond", "second", "cycle", "Duration", "DRAM Throughput", "\"\""])
        .collect();
    let mut run = Run::new("ncu", SECONDS, 20_000);
    while run.more() {
        let base = if run.rng.random_bool(0.5) { NCU_RAW } else { NCU_DETAILS };
        let input = mutate_text(&mut run.rng, base.as_bytes(), &words);
        let text = String::from_utf8_lossy(&input).into_owned();
        let res = run.guard(&input, Duration::from_secs(10), move || {
            attnjoule::sweep::ncu::parse_report(&text).map_err(|e| e.to_string())
        });
        match res {
            Ok(m) => {
                run.accepted += 1;
                for (k, v) in &m {
                    let ok =
                        if k.ends_with("duration_ns") { *v > 0.0 && v.is_finite() } else { (0.0..=100.0).contains(v) };
                    if !ok {
                        run.fail(&input, &format!("accepted {k} = {v}"));
                    }
                }
            }
            Err(e) => one_line(&run, &input, &e),
        }
    }
    run.report();
}

// ---------------------------------------------------------------------------------------------
// JSONL sweep logs.

#[test]
fn mutated_sweep_logs_are_read_soundly_or_refused() {
    use attnjoule::sweep::jsonl;
    let dir = fuzzing::scratch("jsonl");
    // A real log: the emulator's header and points as a sweep writes them, from the analytical
    // profile's decode points relabeled as ours at the log's shape.
    let prof = estimate::analytical::h100_sxm();
    let shape = prof.points[0].shape;
    let spec = serde_json::json!({"spec": {"batch": shape.batch, "heads": shape.heads,
        "kv_heads": shape.kv_heads, "head_dim": shape.head_dim}});
    let base_path = dir.join("base.jsonl");
    let mut w = jsonl::Writer::open(&base_path, 0).unwrap();
    w.append(&jsonl::Line::Header(jsonl::Header {
        kind: attnjoule::profile::ProfileKind::Measured,
        gpu: prof.gpu.clone(),
        created: "2026-11-30".into(),
        tool: None,
        idle_watts: Some(70.0),
        config: spec,
        schema_version: attnjoule::profile::SCHEMA_VERSION,
    }))
    .unwrap();
    let mut n = 0;
    for p in prof.points.iter().filter(|p| p.shape.batch == shape.batch && p.shape.heads == shape.heads) {
        if attnjoule::work::Variant::parse(&p.variant).is_some() && n < 12 {
            let mut p = p.clone();
            p.implementation = "attnjoule".into();
            w.append(&jsonl::Line::Point(Box::new(p))).unwrap();
            n += 1;
        }
    }
    drop(w);
    let base = std::fs::read(&base_path).unwrap();
    assert!(jsonl::read(&base_path).unwrap().points.len() == n && n > 3);
    let mut run = Run::new("jsonl", SECONDS, 5_000);
    let path = dir.join("points.jsonl");
    while run.more() {
        let input = if run.rng.random_bool(0.3) {
            // A line of the log, mutated as JSON.
            let text = String::from_utf8_lossy(&base).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            let i = run.rng.random_range(0..lines.len());
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            let mut v: serde_json::Value = serde_json::from_str(lines[i]).unwrap();
            mutate_json(&mut run.rng, &mut v, RECIPES);
            out[i] = v.to_string();
            (out.join("\n") + "\n").into_bytes()
        } else {
            mutate_text(&mut run.rng, &base, RECIPES)
        };
        std::fs::write(&path, &input).unwrap();
        let p = path.clone();
        let res = run.guard(&input, Duration::from_secs(10), move || -> Result<(), String> {
            let log = jsonl::read(&p).map_err(|e| e.to_string())?;
            let keys: std::collections::HashSet<String> = log.points.iter().map(|p| p.key()).collect();
            if keys.len() != log.points.len() {
                return Err("BROKEN: a key twice".into());
            }
            if !log.points.is_empty() && log.header.is_none() {
                return Err("BROKEN: points without a header".into());
            }
            for pt in log.points.iter() {
                pt.validate().map_err(|e| format!("BROKEN: invalid point accepted: {e}"))?;
            }
            // What a merge makes of it is a valid profile too.
            let (prof, _) = attnjoule::sweep::merge::load_any(&p).map_err(|e| e.to_string())?;
            prof.validate().map_err(|e| format!("BROKEN: {e}"))
        });
        judge(&mut run, &input, res.map(|()| None));
    }
    run.report();
}

// ---------------------------------------------------------------------------------------------
// Mask recipes and block layout files.

#[test]
fn mutated_mask_recipes_and_layout_files_build_or_are_refused() {
    let dir = fuzzing::scratch("layouts");
    let layouts = [
        r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1, 3], "col_idx": [0, 0, 2]}"#,
        r#"{"block_q": 16, "block_k": 32, "row_ptr": [0, 2, 2, 5], "col_idx": [0, 3, 0, 1, 7], "note": "x"}"#,
    ];
    let words: Vec<&str> = NUMBERS.iter().copied().chain([":", "#", "csr:", "window:", "bigbird:"]).collect();
    let mut run = Run::new("masks", SECONDS, 20_000);
    let sizes = [1usize, 2, 63, 64, 65, 100, 128, 192, 1000, 4096, 1 << 20];
    while run.more() {
        let (mut sq, mut sk) =
            (sizes[run.rng.random_range(0..sizes.len())], sizes[run.rng.random_range(0..sizes.len())]);
        let arg = if run.rng.random_bool(0.3) {
            // A layout file, mutated.
            let base = layouts[run.rng.random_range(0..layouts.len())];
            let input = mutate_text(&mut run.rng, base.as_bytes(), &words);
            let f = dir.join(format!("l{}.json", run.cases % 8));
            std::fs::write(&f, &input).unwrap();
            format!("csr:{}", f.display())
        } else if run.rng.random_bool(0.5) {
            // A well-formed recipe with hostile parameters.
            let rng = &mut run.rng;
            let kind = rng.random_range(0..4);
            // Sizes up to 4096 here: a million-token layout takes a second to build (bounded,
            // and tested by the mutated spellings); smaller ones give more cases.
            let small = &sizes[..sizes.len() - 1];
            (sq, sk) = (small[rng.random_range(0..small.len())], small[rng.random_range(0..small.len())]);
            let mut n = || pick(rng, &["0", "1", "2", "3", "64", "65", "1000", "4294967296", "18446744073709551615"]);
            match kind {
                0 => format!("window:{}", n()),
                1 => format!("longformer:{}:{}:{}", n(), n(), n()),
                2 => format!("bigbird:{}:{}:{}:{}:{}", n(), n(), n(), n(), n()),
                _ => format!("strided:{}:{}:{}", n(), n(), n()),
            }
        } else {
            let base = pick(&mut run.rng, RECIPES);
            String::from_utf8_lossy(&mutate_text(&mut run.rng, base.as_bytes(), &words)).into_owned()
        };
        let input = format!("{arg} at {sq} x {sk}").into_bytes();
        let a = arg.clone();
        let res = run.guard(&input, Duration::from_secs(20), move || -> Result<(), String> {
            let r = MaskRecipe::from_arg(&a).map_err(|e| e.to_string())?;
            // A recipe's spelling reads back as the same recipe.
            let back: MaskRecipe = r.to_string().parse().map_err(|e| format!("BROKEN: spelling not read back: {e}"))?;
            if back != r {
                return Err(format!("BROKEN: {r} read back as {back}"));
            }
            r.validate(sq, sk).map_err(|e| e.to_string())?;
            let m = r.mask(sq, sk).map_err(|e| format!("BROKEN: validated but does not build: {e}"))?;
            m.validate(sq, sk).map_err(|e| format!("BROKEN: built an invalid mask: {e}"))?;
            let pairs = m.visible_pairs(sq, sk);
            if pairs > sq as u64 * sk as u64 {
                return Err(format!("BROKEN: {pairs} visible pairs in a {sq} x {sk} plane"));
            }
            let keys: usize = m.visible_key_ranges(sq, sk).iter().map(|(a, b)| b - a).sum();
            if keys > sk || (pairs > 0) != (keys > 0) {
                return Err(format!("BROKEN: {keys} visible keys with {pairs} pairs"));
            }
            Ok(())
        });
        judge(&mut run, &input, res.map(|()| None));
    }
    run.report();
}

// ---------------------------------------------------------------------------------------------
// The command line's numeric arguments.

/// Numeric (and list) arguments of every subcommand, with the base arguments that keep the
/// command small (a hostile value alone decides whether it runs long).
const CLI: &[(&[&str], &[&str])] = &[
    (
        &["estimate", "--no-plot"],
        &[
            "--batch",
            "--tpm",
            "--phrase",
            "--minutes",
            "--gpus",
            "--max-gpus",
            "--gpus-per-node",
            "--headroom",
            "--wait-watts",
            "--window",
            "--budget",
            "--refresh",
            "--retrieval-joules",
        ],
    ),
    (&["mask"], &["--seq", "--seq-k", "--head-dim", "--cells"]),
    (&["mask", "--json", "--rows", "--seq", "64"], &["--seq-k", "--head-dim"]),
    (
        &["emu", "--seq", "64", "--heads", "1", "--kv-heads", "1", "--head-dim", "64", "--max-seconds", "10"],
        &[
            "--seq",
            "--seq-k",
            "--batch",
            "--heads",
            "--kv-heads",
            "--head-dim",
            "--threads",
            "--max-gib",
            "--seed",
            "--max-seconds",
        ],
    ),
    (
        &[
            "emu",
            "--variant",
            "decode",
            "--seq",
            "1",
            "--seq-k",
            "256",
            "--heads",
            "1",
            "--kv-heads",
            "1",
            "--max-seconds",
            "10",
        ],
        &["--splits", "--seq-k", "--threads"],
    ),
    (
        &["sweep", "--backend", "emu", "--dry-run"],
        &[
            "--ctx",
            "--ctx-min",
            "--ctx-max",
            "--decode-tokens",
            "--batch",
            "--heads",
            "--kv-heads",
            "--head-dim",
            "--emu-max-mib",
            "--shard",
        ],
    ),
    (
        &["sweep", "--backend", "emu", "--variants", "decode", "--ctx", "64", "--heads", "1", "--head-dim", "64"],
        &[
            "--ctx",
            "--decode-tokens",
            "--batch",
            "--kv-heads",
            "--min-seconds",
            "--reps",
            "--idle-seconds",
            "--gap",
            "--emu-max-mib",
        ],
    ),
    (
        // Paged, fp8 and ragged decode points: planned (not allocated) by the dry run.
        &[
            "sweep",
            "--backend",
            "emu",
            "--dry-run",
            "--variants",
            "decode",
            "--page-size",
            "16",
            "--mix",
            "mix8:1,uniform",
        ],
        &["--ctx", "--decode-tokens", "--batch", "--heads", "--kv-heads", "--head-dim", "--page-size", "--mix"],
    ),
    (&["gpu-run", "plan"], &["--budget-s"]),
    (
        // Outside code on the emulator: sizes of the launch and of the buffers.
        &[
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
            "--max-seconds",
            "2",
        ],
        &["--grid", "--block", "--smem", "--threads", "--seed", "--max-seconds"],
    ),
];

#[test]
fn hostile_numeric_arguments_fail_in_one_line_or_work() {
    let dir = fuzzing::scratch("cli");
    let bin = env!("CARGO_BIN_EXE_attnjoule");
    let mut run = Run::new("cli", SECONDS * 3.0, 2_000);
    let extra: &[&str] = &["", "1,1", "64,64", "-5", "abc", "1/0", "0/1"];
    while run.more() {
        let (base, flags) = CLI[run.rng.random_range(0..CLI.len())];
        let flag = pick(&mut run.rng, flags);
        let value = if run.rng.random_bool(0.85) { pick(&mut run.rng, NUMBERS) } else { pick(&mut run.rng, extra) };
        let out = dir.join(format!("out{}", run.cases));
        // The hostile value replaces the base's own (clap refuses a flag given twice).
        let mut args: Vec<String> = Vec::new();
        let mut it = base.iter();
        while let Some(a) = it.next() {
            if *a == flag {
                it.next();
            } else {
                args.push(a.to_string());
            }
        }
        args.push(format!("{flag}={value}"));
        if base[0] == "sweep" {
            args.extend(["--out".into(), out.display().to_string()]);
        }
        let input = args.join(" ").into_bytes();
        let t0 = std::time::Instant::now();
        let mut child = std::process::Command::new(bin)
            .args(&args)
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A hostile number may not start unbounded work: 30 s at most (the slowest legitimate
        // case here is a small emulated call on two loaded cores).
        let limit = Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                run.fail(&input, &format!("still running after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        let code = status.code();
        if err.contains("panicked") || code.is_none() || !matches!(code, Some(0..=2)) {
            run.fail(&input, &format!("exit {code:?}: {err}"));
        }
        if code != Some(0) {
            // The error is the last line, alone (progress lines of a sweep may precede it).
            let last = err.trim_end().lines().last().unwrap_or("");
            if !(last.starts_with("error:") || last.starts_with("error ")) {
                run.fail(&input, &format!("exit {code:?} without a one-line error: {err:?}"));
            }
            if err.lines().filter(|l| l.starts_with("error")).count() != 1 {
                run.fail(&input, &format!("more than one error line: {err:?}"));
            }
        } else {
            run.accepted += 1;
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    run.report();
}

//! The estimator against closed forms on the analytical profile, the shape of its curves per
//! policy, memory and deployment rules, bad input, and the command line end to end.

use attnjoule::estimate::deploy::{self, Deployment};
use attnjoule::estimate::model::{preset, ModelSpec, PRESETS};
use attnjoule::estimate::policy::{Policy, ALL};
use attnjoule::estimate::{analytical, estimate, Conversation, Estimator, Options, RowStatus};
use attnjoule::profile::{EnergyMethod, GemmPoint, Profile, ProfileKind, Stat};
use attnjoule::Error;
use std::process::Command;

const PEAK: f64 = 989e12;
const BW: f64 = 3350e9;

fn profile() -> Profile {
    analytical::bundled().expect("bundled profile parses")
}

fn est(model: &str, opts: Options) -> Estimator {
    Estimator::new(&profile(), "test", preset(model).unwrap(), opts).unwrap()
}

fn dep(gpus: usize) -> Deployment {
    Deployment::split(gpus, 8, 80e9, 0.1).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// The analytical power model (src/estimate/machine.rs) written out: 700 W with the tensor cores
/// saturated, 60% of it with only the memory saturated, 100 W waiting, weighted by the time each
/// resource is busy (`tc`, `tm`: seconds at the peaks).
fn watts(tc: f64, tm: f64) -> f64 {
    let t = tc.max(tm);
    let (uc, um) = (tc / t, tm / t);
    100.0 + 600.0 * uc + (0.6 * 700.0 - 100.0) * um * (1.0 - uc)
}

/// One layer, one token, at a profiled context: exact FLOP and byte arithmetic of the 1T model's
/// per-GPU decode call (tp 8: 25 query heads, 1 KV head, head_dim 128).
#[test]
fn one_layer_one_token_closed_form() {
    let e = est("1t", Options::default());
    let d = dep(32);
    for ctx in [4096usize, 65536] {
        let c = e.decode_call(Policy::KvCache, ctx, &d).unwrap();
        let flops = 4.0 * 128.0 * 25.0 * ctx as f64;
        // Q and O (25 x 128 bf16 each), LSE (25 f32), K and V (ctx x 1 x 128 bf16 each).
        let bytes = 2.0 * 25.0 * 128.0 * 2.0 + 25.0 * 4.0 + 2.0 * ctx as f64 * 128.0 * 2.0;
        let t = (flops / PEAK).max(bytes / BW);
        assert!(rel(c.seconds, t) < 1e-12, "ctx {ctx}: {} vs {t}", c.seconds);
        let w = watts(flops / PEAK, bytes / BW);
        assert!(rel(c.joules, t * w) < 1e-12);
        assert!((420.0..470.0).contains(&w), "memory-bound (25 query heads per KV head add FLOPs): {w} W");
        assert!(!c.extrapolated);
    }
    // The analytical profile's calls come from work counts, so they are exact between and
    // beyond its points too.
    for ctx in [1125, 3 << 20] {
        let c = e.decode_call(Policy::KvCache, ctx, &d).unwrap();
        let bytes = 2.0 * 25.0 * 128.0 * 2.0 + 25.0 * 4.0 + 2.0 * ctx as f64 * 128.0 * 2.0;
        assert!(rel(c.seconds, bytes / BW) < 1e-12, "{ctx}");
        assert!(!c.extrapolated);
    }
}

/// A phrase is its tokens' non-attention roofline plus the layers' attention calls, with the
/// waiting stages' power on top: check the sum at a profiled midpoint context.
#[test]
fn one_phrase_closed_form() {
    let e = est("1t", Options::default());
    let m = preset("1t").unwrap();
    let d = dep(32);
    let ctx = 4096 - 25; // the 50-token phrase's midpoint is 4096, a profiled context
    let c = e.phrase(Policy::KvCache, ctx, &d).unwrap();
    let call = e.decode_call(Policy::KvCache, 4096, &d).unwrap();
    // Every weight read once but the input embedding (one row looked up); its FLOPs without it.
    let (tc, tm) = (2.0 * m.matmul_params() / (8.0 * PEAK), m.weight_bytes_read(1.0) / (8.0 * BW));
    assert!(rel(m.weight_bytes_read(1.0), 2.0 * (m.total_params() - 128256.0 * 25600.0 + 25600.0)) < 1e-12);
    let weights_t = tc.max(tm);
    // Each layer all-reduces one token's activations (25600 bf16) twice over 8 GPUs: 14 ring
    // steps of 1/8 of them at 450 GB/s, no latency assumed; at the memory-bound 420 W.
    let comm_t = 128.0 * 2.0 * 14.0 * (25600.0 * 2.0 / 8.0 / 450e9);
    let step_t = weights_t + 128.0 * call.seconds + comm_t;
    assert!(rel(c.seconds, 50.0 * step_t) < 1e-12);
    let active = 50.0 * (weights_t * 8.0 * watts(tc, tm) + 128.0 * 8.0 * call.joules + comm_t * 8.0 * 420.0);
    let waiting = 50.0 * step_t * 24.0 * 100.0;
    assert!(rel(c.joules, active + waiting) < 1e-12, "{} vs {}", c.joules, active + waiting);
    let attn = 50.0 * 128.0 * (8.0 * call.joules + call.seconds * 24.0 * 100.0);
    assert!(rel(c.attn_joules, attn) < 1e-12);
}

/// At batch 1 and minute 5 a token costs what reading every weight costs: 2 bytes x parameters
/// / bandwidth, split over the tensor-parallel GPUs, times the power of every occupied GPU.
#[test]
fn batch_one_is_the_weights_roofline() {
    for name in ["1t", "llama-3.1-70b", "llama-3.1-405b"] {
        let m = preset(name).unwrap();
        let r = estimate(
            &profile(),
            "test",
            m.clone(),
            &Conversation { minutes: vec![5.0], ..Default::default() },
            Options::default(),
            &[Policy::KvCache],
        )
        .unwrap();
        let row = &r.rows[0];
        let (tp, n) = (row.tp as f64, row.gpus as f64);
        let (tc, tm) = (2.0 * m.matmul_params() / (tp * PEAK), m.weight_bytes_read(1.0) / (tp * BW));
        let roofline = tm * (tp * watts(tc, tm) + (n - tp) * 100.0);
        let j = row.joules_per_token.unwrap();
        println!("{name}: {j:.1} J/token vs weights roofline {roofline:.1} on {n} GPUs");
        assert!(rel(j, roofline) < 0.03, "{name}: {j} vs {roofline}");
        assert!(j > roofline, "attention and the cache add to the weights");
    }
}

/// With a cache, per-token cost is affine in context (each token reads the whole cache once);
/// at batch 64 the cache is visible in the total.
#[test]
fn kv_cache_per_token_cost_grows_linearly() {
    let e = est("1t", Options { batch: 64, ..Default::default() });
    let d = dep(88);
    let j = |c: usize| e.phrase(Policy::KvCache, c, &d).unwrap().joules;
    let (a, b, c) = (j(20_000), j(60_000), j(100_000));
    assert!(b > a && c > b);
    let (d1, d2) = (b - a, c - b);
    println!("kv-cache batch 64: {a:.0} {b:.0} {c:.0} J per phrase; second difference {:.2e}", (d2 - d1) / d1);
    assert!(rel(d2, d1) < 0.02, "not linear: {d1} then {d2}");
    // Doubling the context far beyond the weights' share doubles the cache part.
    assert!(c > 1.5 * a);
}

/// Without a cache every phrase re-prefills the history: attention per phrase grows about
/// quadratically, the whole phrase faster than linearly.
#[test]
fn no_cache_per_phrase_grows_quadratically() {
    let e = est("1t", Options::default());
    let d = dep(40);
    let c1 = e.phrase(Policy::NoCache, 50_000, &d).unwrap();
    let c2 = e.phrase(Policy::NoCache, 100_000, &d).unwrap();
    let ratio = c2.attn_joules / c1.attn_joules;
    println!("no-cache attention joules x{ratio:.3} when the context doubles");
    assert!((3.6..=4.05).contains(&ratio), "{ratio}");
    let c3 = e.phrase(Policy::NoCache, 150_000, &d).unwrap();
    assert!(c3.joules - c2.joules > c2.joules - c1.joules, "convex in context");
}

#[test]
fn sliding_window_is_flat_beyond_its_width() {
    for batch in [1, 64] {
        let e = est("1t", Options { batch, ..Default::default() });
        let d = dep(40);
        let w = |c: usize| e.phrase(Policy::Window, c, &d).unwrap().joules;
        let base = w(10_000);
        for c in [20_000, 113_625, 500_000] {
            assert!(rel(w(c), base) < 1e-9, "batch {batch}, ctx {c}: {} vs {base}", w(c));
        }
        assert!(w(1_000) < base, "inside the window the cost still grows");
        // The cache keeps only the window.
        let m1 = e.memory(Policy::Window, 10_000, &d).kv;
        assert_eq!(m1, e.memory(Policy::Window, 500_000, &d).kv);
    }
}

#[test]
fn fixed_budget_is_flat() {
    let e = est("llama-3.1-70b", Options { batch: 8, ..Default::default() });
    let d = dep(8);
    let f = |c: usize| e.phrase(Policy::Budget, c, &d).unwrap();
    let base = f(20_000);
    for c in [50_000, 113_625, 1_000_000] {
        assert!(rel(f(c).joules, base.joules) < 1e-9);
        assert!(rel(f(c).seconds, base.seconds) < 1e-9);
    }
    assert!(e.memory(Policy::Budget, 1_000_000, &d).kv == e.memory(Policy::Budget, 20_000, &d).kv);
}

#[test]
fn block_sparse_and_recurrent_do_not_grow_with_context() {
    let e = est("1t", Options { batch: 64, ..Default::default() });
    let d = dep(88);
    for p in [Policy::BlockSparse, Policy::Recurrent] {
        let a = e.phrase(p, 20_000, &d).unwrap().joules;
        let b = e.phrase(p, 110_000, &d).unwrap().joules;
        assert!(rel(b, a) < 0.01, "{p:?}: {a} -> {b}");
    }
    let kv = e.phrase(Policy::KvCache, 110_000, &d).unwrap().joules;
    assert!(e.phrase(Policy::BlockSparse, 110_000, &d).unwrap().joules < kv);
}

/// Splitting over more GPUs never lowers the cache bytes a token needs (KV heads are replicated
/// once tensor parallelism exceeds them), and the deployment grows with the batch's cache.
#[test]
fn more_gpus_never_lower_memory_per_token() {
    for name in PRESETS {
        let m = preset(name).unwrap();
        let mut last = 0.0;
        for n in [1, 2, 4, 8, 16, 64, 256] {
            let b = dep(n).kv_bytes_per_token(&m);
            assert!(b >= last, "{name}: {n} GPUs need {b} < {last} bytes per token");
            assert!(b >= m.kv_bytes_per_token());
            last = b;
        }
    }
    let e1 = est("1t", Options { batch: 1, ..Default::default() });
    let e64 = est("1t", Options { batch: 64, ..Default::default() });
    let (d1, _) = e1.deployment(Policy::KvCache, &[113_625]).unwrap();
    let (d64, _) = e64.deployment(Policy::KvCache, &[113_625]).unwrap();
    assert!(d64.gpus() > d1.gpus());
    assert!(e64.memory(Policy::KvCache, 113_625, &d64).total() <= d64.usable());
}

#[test]
fn a_context_that_does_not_fit_is_reported_not_computed() {
    let r = estimate(
        &profile(),
        "test",
        preset("1t").unwrap(),
        &Conversation::default(),
        Options { gpus: Some(32), ..Default::default() },
        &[Policy::KvCache, Policy::Dense],
    )
    .unwrap();
    for row in &r.rows {
        match row.status {
            RowStatus::DoesNotFit { need_gib_per_gpu, have_gib_per_gpu } => {
                assert!(need_gib_per_gpu > have_gib_per_gpu);
                assert!(row.wh_per_phrase.is_none() && row.cumulative_wh.is_none());
            }
            RowStatus::Ok => assert!(row.mem_gib_per_gpu * (1u64 << 30) as f64 <= 72e9 * 1.000001),
            RowStatus::NoData { .. } => panic!("analytical profile has every curve"),
        }
    }
    // 32 GPUs hold the 1T weights and a 1125-token cache, not a dense 113K score matrix.
    assert!(matches!(r.rows[0].status, RowStatus::Ok));
    assert!(matches!(r.rows.last().unwrap().status, RowStatus::DoesNotFit { .. }));
}

/// A measured profile's curve is read outside its contexts only with a flag (the analytical one
/// is work counts at any context, never extrapolated).
#[test]
fn extrapolation_is_flagged() {
    let conv = Conversation { tokens_per_minute: 5000.0, minutes: vec![1.0, 400.0], ..Default::default() };
    let mut measured = profile();
    measured.kind = ProfileKind::Measured;
    let m = preset("llama-3.1-70b").unwrap();
    let r = estimate(&profile(), "t", m.clone(), &conv, Options::default(), &[Policy::KvCache]).unwrap();
    assert!(r.rows.iter().all(|row| !row.extrapolated));
    let r = estimate(&measured, "t", m, &conv, Options::default(), &[Policy::KvCache]).unwrap();
    assert!(!r.rows[0].extrapolated, "5000 tokens lie inside 1K..1M");
    assert!(r.rows[1].extrapolated, "2M tokens lie beyond the profile's 1M");
    assert!(r.rows[1].wh_per_phrase.unwrap() > r.rows[0].wh_per_phrase.unwrap());
}

/// A measured profile goes through the same code: a kernel twice as slow as the roofline makes
/// attention twice as expensive, and a GEMM calibration replaces the non-attention roofline.
#[test]
fn measured_profile_scales_the_same_way() {
    let mut p = profile();
    p.kind = ProfileKind::Measured;
    p.points.modify_all(|pt| {
        if let (Some(s), Some(j)) = (pt.seconds.as_mut(), pt.joules.as_mut()) {
            *s = Stat::exact(2.0 * s.median);
            *j = Stat::exact(3.0 * j.median);
        }
    });
    let m = preset("1t").unwrap();
    let mut unscaled = profile();
    unscaled.kind = ProfileKind::Measured;
    let base = Estimator::new(&unscaled, "measured", m.clone(), Options::default()).unwrap();
    let meas = Estimator::new(&p, "measured", m.clone(), Options::default()).unwrap();
    let d = dep(32);
    let (a, b) =
        (base.decode_call(Policy::KvCache, 8192, &d).unwrap(), meas.decode_call(Policy::KvCache, 8192, &d).unwrap());
    assert!(rel(b.seconds, 2.0 * a.seconds) < 1e-12 && rel(b.joules, 3.0 * a.joules) < 1e-12);

    // GEMM calibration at m = 1 and 4096: 1e-12 s and 2e-10 J per FLOP at m = 1.
    let g = |mm: u64, s_per: f64, j_per: f64| {
        let f = 2.0 * (mm * 8192 * 8192) as f64;
        GemmPoint {
            m: mm,
            n: 8192,
            k: 8192,
            seconds: Stat::exact(f * s_per),
            joules: Some(Stat::exact(f * j_per)),
            energy_method: EnergyMethod::Counter,
        }
    };
    p.gemm = vec![g(1, 1e-12, 2e-10), g(4096, 1e-15, 5e-13)];
    let cal = Estimator::new(&p, "measured", m.clone(), Options::default()).unwrap();
    let c = cal.phrase(Policy::Recurrent, 1000, &d).unwrap();
    let nc = meas.phrase(Policy::Recurrent, 1000, &d).unwrap();
    let flops = 2.0 * m.matmul_params();
    // Recurrent mixing is analytical in both; the difference is the GEMM part.
    let diff_t = (c.seconds - nc.seconds) / 50.0;
    // Without GEMM points the layers run at the bandwidth the profile's decode points achieved:
    // half the peak, as they take twice the roofline time.
    let achieved = meas.hw.machine.efficiency.bandwidth.value;
    assert!(rel(achieved, 0.5) < 1e-12, "{achieved}");
    let roof_t = m.weight_bytes_read(1.0) / (8.0 * BW * achieved);
    assert!(rel(diff_t, flops / 8.0 * 1e-12 - roof_t) < 1e-9, "{diff_t}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let p = profile();
    let conv = Conversation::default();
    let err = ModelSpec::resolve("gpt-17").unwrap_err();
    assert!(matches!(&err, Error::Invalid(m) if m.contains("unknown model preset")), "{err}");

    for minutes in [vec![0.0], vec![5.0, -1.0], vec![f64::NAN], vec![]] {
        let c = Conversation { minutes, ..Default::default() };
        let e = estimate(&p, "t", preset("1t").unwrap(), &c, Options::default(), &ALL).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
    let e = estimate(&p, "t", preset("1t").unwrap(), &conv, Options { batch: 0, ..Default::default() }, &ALL);
    assert!(matches!(e, Err(Error::Invalid(_))));

    // 1T weights (2 TB) on at most 16 GPUs of 80 GB: no deployment.
    let e = estimate(&p, "t", preset("1t").unwrap(), &conv, Options { max_gpus: 16, ..Default::default() }, &ALL)
        .unwrap_err();
    assert!(matches!(&e, Error::Invalid(m) if m.contains("fits no deployment")), "{e}");
    let e = estimate(&p, "t", preset("1t").unwrap(), &conv, Options { gpus: Some(8), ..Default::default() }, &ALL)
        .unwrap_err();
    assert!(matches!(&e, Error::Invalid(m) if m.contains("does not fit on 8 GPUs")), "{e}");

    for bad in ["{", "{\"schema_version\": 1}", "{\"schema_version\": 9, \"kind\": \"analytical\"}", "[]"] {
        assert!(matches!(Profile::from_json(bad), Err(Error::Format(_))), "{bad}");
    }
    let mut emu = p.clone();
    emu.kind = ProfileKind::Emulated;
    assert!(matches!(Estimator::new(&emu, "t", preset("1t").unwrap(), Options::default()), Err(Error::Format(_))));

    // A profile without decode points: the rows say so instead of inventing numbers.
    let mut empty = p.clone();
    empty.points.clear();
    let r =
        estimate(&empty, "t", preset("llama-3.1-70b").unwrap(), &conv, Options::default(), &[Policy::KvCache]).unwrap();
    assert!(r.rows.iter().all(|row| matches!(&row.status, RowStatus::NoData { reason } if reason.contains("decode"))));
    // The recurrent policy is analytical and needs no points.
    let r = estimate(&empty, "t", preset("llama-3.1-70b").unwrap(), &conv, Options::default(), &[Policy::Recurrent])
        .unwrap();
    assert!(r.rows.iter().all(|row| row.status == RowStatus::Ok));
}

#[test]
fn cumulative_energy_sums_the_phrases() {
    let conv = Conversation { minutes: vec![5.0, 10.0], ..Default::default() };
    let e = est("llama-3.1-70b", Options::default());
    let d = dep(8);
    // Minute 10 = 2250 tokens: phrases at 0, 50, ..., 2250 (46 of them, summed exactly).
    let exact: f64 = (0..=45).map(|k| e.phrase(Policy::KvCache, k * 50, &d).unwrap().joules).sum();
    assert_eq!(e.cumulative_joules(Policy::KvCache, 2250, &d).unwrap(), exact);
    // Beyond 48 phrases the trapezoid rule stands in; on a smooth curve it is close.
    let n = 3000 / 50;
    let exact: f64 = (0..=n).map(|k| e.phrase(Policy::NoCache, k * 50, &d).unwrap().joules).sum();
    let approx = e.cumulative_joules(Policy::NoCache, 3000, &d).unwrap();
    println!("trapezoid vs exact sum: {:.2e}", rel(approx, exact));
    assert!(rel(approx, exact) < 0.01);
    let r = estimate(&profile(), "t", preset("llama-3.1-70b").unwrap(), &conv, Options::default(), &[Policy::KvCache])
        .unwrap();
    assert!(r.rows[1].cumulative_wh.unwrap() > r.rows[0].cumulative_wh.unwrap());
}

#[test]
fn deployment_sizing_picks_the_smallest_that_fits() {
    let e = est("llama-3.1-70b", Options { batch: 64, ..Default::default() });
    let (d, sized) = e.deployment(Policy::KvCache, &[1125, 113_625]).unwrap();
    assert_eq!(sized, 113_625);
    assert!(e.memory(Policy::KvCache, sized, &d).total() <= d.usable());
    let smaller =
        deploy::smallest(d.gpus() - 1, 8, 80e9, 0.1, |x| e.memory(Policy::KvCache, sized, x).total() <= x.usable());
    assert!(smaller.is_none(), "a smaller deployment fits: {smaller:?}");
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_attnjoule")).args(args).output().expect("runs the binary")
}

#[test]
fn cli_prints_the_table_and_writes_the_plot() {
    let dir = std::env::temp_dir().join(format!("attnjoule-estimate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("estimate.svg");
    let out = run(&["estimate", "--plot", svg.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(stdout.contains("ANALYTICAL"));
    assert!(stdout.contains("batch 1 ") && stdout.contains("batch 64 "));
    for p in ALL {
        assert!(stdout.contains(p.name()), "{}", p.name());
    }
    assert!(stdout.contains("does not fit"), "dense at long contexts must be reported as not fitting");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("kv-cache") && text.contains("20 W"));

    let out = run(&["estimate", "--csv", "--no-plot", "--model", "llama-3.1-70b", "--batch", "1"]);
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 1 + 7 * 5);
    let out = run(&["estimate", "--json", "--no-plot", "--model", "deepseek-v3", "--minutes", "5,505"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["profile"]["kind"], "analytical");

    // The written analytical profile is the bundled one.
    let prof = dir.join("a.json");
    assert!(run(&["estimate", "--write-analytical", prof.to_str().unwrap()]).status.success());
    assert_eq!(Profile::load(&prof).unwrap(), profile());

    for bad in [
        vec!["estimate", "--model", "gpt-17", "--no-plot"],
        vec!["estimate", "--minutes", "0", "--no-plot"],
        vec!["estimate", "--max-gpus", "16", "--no-plot"],
        vec!["estimate", "--profile", "/nonexistent/p.json", "--no-plot"],
    ] {
        let out = run(&bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?}");
        assert_eq!(err.trim().lines().count(), 1, "{bad:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    let malformed = dir.join("bad.json");
    std::fs::write(&malformed, "{\"schema_version\": 1, \"kind\": \"measured\"}").unwrap();
    let out = run(&["estimate", "--profile", malformed.to_str().unwrap(), "--no-plot"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("malformed profile"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn custom_model_files_load() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/models/llama-3.1-8b.toml");
    let m = ModelSpec::resolve(path).unwrap();
    // Llama 3.1 8B: 8.03B parameters (model card).
    assert!(rel(m.total_params(), 8.03e9) < 0.005, "{}", m.total_params());
    let json = std::env::temp_dir().join(format!("attnjoule-model-{}.json", std::process::id()));
    std::fs::write(&json, serde_json::to_string(&preset("deepseek-v3").unwrap()).unwrap()).unwrap();
    assert_eq!(ModelSpec::resolve(json.to_str().unwrap()).unwrap(), preset("deepseek-v3").unwrap());
    std::fs::write(&json, "{\"name\": \"x\", \"layers\": 2}").unwrap();
    let e = ModelSpec::resolve(json.to_str().unwrap()).unwrap_err();
    assert!(matches!(&e, Error::Format(m) if m.contains("model JSON")), "{e}");
    let _ = std::fs::remove_file(&json);
    assert!(matches!(ModelSpec::resolve("/nonexistent/m.toml"), Err(Error::Io { .. })));
}

#[test]
fn hostile_conversations_and_deployments_are_refused() {
    let p = profile();
    let m = || preset("llama-3.1-70b").unwrap();
    // Contexts beyond what the estimator tabulates (was: an abort allocating 2^57 bytes, or a panic in the
    // mask arithmetic for a huge phrase).
    for conv in [
        Conversation { minutes: vec![1e15], ..Default::default() },
        Conversation { tokens_per_minute: 1e300, ..Default::default() },
        Conversation { phrase_tokens: usize::MAX, ..Default::default() },
    ] {
        let e = estimate(&p, "t", m(), &conv, Options::default(), &ALL).unwrap_err();
        assert!(matches!(&e, Error::Invalid(s) if s.contains("longest the estimator tabulates")), "{e}");
    }
    // A deployment search over 2^64 GPUs (was: a loop without end).
    let e =
        estimate(&p, "t", m(), &Conversation::default(), Options { max_gpus: usize::MAX, ..Default::default() }, &ALL)
            .unwrap_err();
    assert!(matches!(&e, Error::Invalid(s) if s.contains("at most")), "{e}");

    for (args, needle) in [
        (&["estimate", "--minutes", "1e15", "--no-plot"][..], "longest the estimator tabulates"),
        (&["estimate", "--max-gpus", "18446744073709551615", "--no-plot"][..], "at most"),
        // Negative numbers reach the validation (was: clap's "unexpected argument '-1'").
        (&["estimate", "--retrieval-joules", "-1", "--no-plot"][..], "retrieval joules"),
        (&["estimate", "--wait-watts", "-1", "--no-plot"][..], "waiting power"),
        (&["estimate", "--tpm", "-5", "--no-plot"][..], "tokens per minute"),
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.trim_end().lines().count() == 1 && err.contains(needle), "{args:?}: {err}");
    }
}

/// The bundled profile as schema 1 wrote it (masks as kind/size/detail, the block-sparse points as
/// `bigbird-decode local=3 ...`) reads as today's: the same points, the same estimate, and the
/// estimator finds its window and block-sparse curves (not the causal fallback).
#[test]
fn the_schema_1_bundled_profile_reads_as_today() {
    let old = Profile::from_json(include_str!("data/h100-sxm-analytical-v1.json")).unwrap();
    let new = profile();
    // The v1 file's energies are those of the power model of its day (board power throughout);
    // the estimator costs an analytical profile's calls from work counts, not from them.
    let times = |p: &Profile| {
        let mut v = p.points.clone();
        v.modify_all(|pt| (pt.joules, pt.joules_above_idle, pt.watts, pt.note) = (None, None, None, None));
        v
    };
    assert_eq!(times(&old), times(&new));
    assert_eq!((old.schema_version, old.kind, &old.peaks), (new.schema_version, new.kind, &new.peaks));
    let conv = Conversation::default();
    for batch in [1, 64] {
        let opts = Options { batch, ..Default::default() };
        let a = estimate(&old, "v1", preset("1t").unwrap(), &conv, opts.clone(), &ALL).unwrap();
        let b = estimate(&new, "v1", preset("1t").unwrap(), &conv, opts, &ALL).unwrap();
        assert_eq!(serde_json::to_value(&a.rows).unwrap(), serde_json::to_value(&b.rows).unwrap());
        assert!(!a.notes.iter().any(|n| n.contains("no window") || n.contains("no block-sparse")), "{:?}", a.notes);
    }
}

/// `--kv-dtype fp8` on the analytical profile: every cache policy's attention call reads the
/// visible cache at half the bytes plus the scales' share (2 B per token row of 128 elements), so
/// its (memory-bound) time scales by exactly the bytes; the policies that rebuild their cache
/// each phrase, and the others, do not move.
#[test]
fn fp8_kv_halves_attention_bytes_plus_scales() {
    use attnjoule::paged::KvDtype;
    use attnjoule::work;
    let with = |kv| est("1t", Options { kv_dtype: Some(kv), ..Options::default() });
    let (e16, e8, none) = (with(KvDtype::Bf16), with(KvDtype::Fp8), est("1t", Options::default()));
    let d = dep(32);
    for policy in [Policy::KvCache, Policy::Window, Policy::BlockSparse, Policy::Budget, Policy::NoCache, Policy::Dense]
    {
        for ctx in [4096usize, 50_000, 1 << 20] {
            let (a, b) = (e16.decode_call(policy, ctx, &d).unwrap(), e8.decode_call(policy, ctx, &d).unwrap());
            assert_eq!(none.decode_call(policy, ctx, &d).unwrap(), a, "{policy:?}: --kv-dtype bf16 is the default");
            if !policy.keeps_cache() {
                assert_eq!(a, b, "{policy:?} rebuilds its cache in bf16");
                continue;
            }
            // The model's per-GPU call (25 heads on 1 KV head, d 128) and its bytes by part.
            let (mask, k) = match policy {
                Policy::Window => (attnjoule::Mask::causal_window(4096), ctx),
                Policy::BlockSparse => (attnjoule::estimate::BLOCK_SPARSE_DEFAULT.mask(1, ctx).unwrap(), ctx),
                Policy::Budget => (attnjoule::Mask::Causal, ctx.min(8192)),
                _ => (attnjoule::Mask::Causal, ctx),
            };
            let p = e16.attention_problem(&d, 1, k, mask);
            let kv16 = work::visible_kv_bytes(&p);
            let rest = work::decode(&p, 1).min_bytes - kv16;
            let kv8 = work::decode_kv(&p, 1, KvDtype::Fp8).min_bytes - rest;
            assert_eq!(kv8 / kv16, 0.5 + 1.0 / 128.0, "{policy:?}: half the elements plus 2 B per 256 B row");
            assert!(rel(b.seconds / a.seconds, (rest + kv8) / (rest + kv16)) < 1e-12, "{policy:?} at {ctx}");
            // Energy: each call's time at its power (memory-bound; the FLOPs' share differs).
            let fl = work::decode(&p, 1).flops / PEAK;
            let (w16, w8) = (watts(fl, (rest + kv16) / BW), watts(fl, (rest + kv8) / BW));
            assert!(rel(b.joules / a.joules, (rest + kv8) / (rest + kv16) * w8 / w16) < 1e-12);
            assert!(b.seconds < 0.51 * a.seconds + rest / BW, "{policy:?}: about half");
        }
    }
    // Memory: the cache policies hold half the KV plus scales; the others hold what they held.
    let (m16, m8) = (e16.memory(Policy::KvCache, 100_000, &d), e8.memory(Policy::KvCache, 100_000, &d));
    assert!(rel(m8.kv / m16.kv, 0.5 + 1.0 / 128.0) < 1e-12);
    assert_eq!(e16.memory(Policy::NoCache, 100_000, &d), e8.memory(Policy::NoCache, 100_000, &d));
    assert_eq!(e16.memory(Policy::Recurrent, 100_000, &d), e8.memory(Policy::Recurrent, 100_000, &d));
}

/// The batch-64 table under fp8: the cache policies cost less at every minute (fewer bytes, and
/// fewer GPUs to hold the cache), the others not at all.
#[test]
fn fp8_changes_the_cache_policies_rows_only() {
    use attnjoule::paged::KvDtype;
    let conv = Conversation::default();
    let table = |kv| {
        let opts = Options { batch: 64, kv_dtype: kv, ..Options::default() };
        estimate(&profile(), "test", preset("1t").unwrap(), &conv, opts, &ALL).unwrap()
    };
    let (a, b) = (table(None), table(Some(KvDtype::Fp8)));
    for (x, y) in a.rows.iter().zip(&b.rows) {
        assert_eq!((x.policy, x.minute), (y.policy, y.minute));
        if x.policy.keeps_cache() {
            let (wx, wy) = (x.wh_per_phrase.unwrap(), y.wh_per_phrase.unwrap());
            assert!(wy < wx, "{:?} at minute {}: {wy} vs {wx}", x.policy, x.minute);
            assert!(y.kv_gib < 0.51 * x.kv_gib);
        } else {
            assert_eq!(x, y, "{:?} does not change", x.policy);
        }
    }
    // The KV-cache policy at the last minute: attention's share falls with its bytes.
    let last = |r: &attnjoule::estimate::Report| {
        r.rows.iter().rfind(|row| row.policy == Policy::KvCache).unwrap().attention_share.unwrap()
    };
    assert!(last(&b) < last(&a));
}

/// fp8 decode points in a profile are used where they exist: the call is read from them (and
/// scaled by the model's fp8 bytes), not from the bf16 curve.
#[test]
fn fp8_profile_points_are_used_when_measured() {
    use attnjoule::paged::KvDtype;
    let mut p = profile();
    let fp8: Vec<_> = p
        .points
        .iter()
        .filter(|x| x.variant == "decode" && x.mask == attnjoule::mask::MaskRecipe::Causal)
        .cloned()
        .map(|mut x| {
            x.serving.kv_dtype = KvDtype::Fp8;
            x.serving.page_size = Some(64);
            // A "measured" fp8 kernel at 0.7x its bf16 time, whatever its bytes.
            x.seconds = x.seconds.map(|s| Stat::exact(0.7 * s.median));
            x.joules = x.joules.map(|j| Stat::exact(0.7 * j.median));
            x
        })
        .collect();
    p.kind = ProfileKind::Measured;
    let bf16_only = p.clone();
    p.points.extend(fp8);
    let opts = Options { kv_dtype: Some(KvDtype::Fp8), ..Options::default() };
    let e = Estimator::new(&p, "test", preset("1t").unwrap(), opts).unwrap();
    assert!(!e.notes.iter().any(|n| n.contains("no fp8 causal")), "{:?}", e.notes);
    let d = dep(32);
    let ctx = 65536;
    let c = e.decode_call(Policy::KvCache, ctx, &d).unwrap();
    // The profiled fp8 call (8 heads, 1 KV head) and the model's, both at fp8 bytes.
    let roof = |w: attnjoule::work::Work| (w.flops / PEAK).max(w.min_bytes / BW);
    let prof = attnjoule::Problem::new(attnjoule::Shape::decode(1, 1, ctx, 8, 1, 128), attnjoule::Mask::Causal);
    let model = e.attention_problem(&d, 1, ctx, attnjoule::Mask::Causal);
    let t_prof = 0.7 * roof(attnjoule::work::decode(&prof, 1));
    let want = t_prof * roof(attnjoule::work::decode_kv(&model, 1, KvDtype::Fp8))
        / roof(attnjoule::work::decode_kv(&prof, 1, KvDtype::Fp8));
    assert!(rel(c.seconds, want) < 1e-12, "{} vs {want}", c.seconds);
    // bf16 calls keep the bf16 points.
    let e16 = Estimator::new(&p, "test", preset("1t").unwrap(), Options::default()).unwrap();
    let plain = Estimator::new(&bf16_only, "test", preset("1t").unwrap(), Options::default()).unwrap();
    assert_eq!(
        e16.decode_call(Policy::KvCache, ctx, &d).unwrap(),
        plain.decode_call(Policy::KvCache, ctx, &d).unwrap()
    );
}

#[test]
fn cli_kv_dtype() {
    let table = |args: &[&str]| {
        let out = run(&[&["estimate", "--no-plot"], args].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (default, bf16, fp8) = (table(&[]), table(&["--kv-dtype", "bf16"]), table(&["--kv-dtype", "fp8"]));
    let wh = |s: &str| s.lines().skip_while(|l| !l.starts_with("Wh per")).take(11).collect::<Vec<_>>().join("\n");
    assert_eq!(wh(&default), wh(&bf16), "the presets' cache is bf16 already");
    assert_ne!(wh(&default), wh(&fp8));
    let row = |s: &str, p: &str| s.lines().find(|l| l.starts_with(p)).unwrap().to_string();
    for p in ["no-cache", "dense ", "recurrent"] {
        assert_eq!(row(&wh(&default), p), row(&wh(&fp8), p), "{p}");
    }
    assert!(fp8.contains("fp8 e4m3 with per-token scales") && fp8.contains("no fp8 causal decode points"));
    let bad = run(&["estimate", "--no-plot", "--kv-dtype", "fp4"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}

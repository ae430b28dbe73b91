//! Serving decode before its kernel: the sweep enumerates paged, fp8 and ragged-mix decode points
//! only when asked, lists them with the step they stand for, and records them as failed ("no kernel
//! yet"); the profile and its log carry the new axes additively (older files read as contiguous
//! bf16 uniform points, keys unchanged).

use attnjoule::mask::MaskRecipe;
use attnjoule::paged::mix::{Mix, ServingAxes};
use attnjoule::paged::KvDtype;
use attnjoule::profile::{Phase, PointStatus, Profile};
use attnjoule::sweep::backend::{self, BackendKind, RunConfig};
use attnjoule::sweep::{self as sw, jsonl, SweepSpec};
use attnjoule::work::Variant;
use std::process::Command;

fn axes(kv: KvDtype, page: Option<usize>, mix: Option<Mix>) -> ServingAxes {
    ServingAxes { kv_dtype: kv, page_size: page, mix }
}

#[test]
fn default_sweeps_are_unchanged_and_serving_points_only_when_asked() {
    let base = sw::enumerate(&SweepSpec::default()).unwrap();
    assert_eq!(base.len(), 44);
    assert!(base.iter().all(|p| p.serving.is_default() && !p.key().contains("/kv=") && !p.key().contains("/page=")));
    assert!(base.iter().any(|p| p.key() == "attnjoule/decode/decode/causal/b1q1k1024h8kv1d128"));

    let mix = Mix { count: 64, seed: 1 };
    let serving = ServingAxes::cross(&[KvDtype::Bf16, KvDtype::Fp8], &[None, Some(64)], &[None, Some(mix)]).unwrap();
    let spec = SweepSpec { contexts: vec![4096, 40_000], serving, ..Default::default() };
    let pts = sw::enumerate(&spec).unwrap();
    // Decode points: 2 contexts x (contiguous bf16 + page 64 x {bf16, fp8} x {uniform, mix}).
    let decode: Vec<_> = pts.iter().filter(|p| p.variant == Variant::Decode).collect();
    assert_eq!(decode.len(), 2 * 5);
    // Other variants: as without the axes.
    assert_eq!(pts.len() - decode.len(), 2 * 3);
    let keys: std::collections::HashSet<String> = pts.iter().map(|p| p.key()).collect();
    assert_eq!(keys.len(), pts.len(), "every axis is part of the key");
    let m = decode.iter().find(|p| p.serving.mix.is_some() && p.serving.kv_dtype == KvDtype::Fp8).unwrap();
    assert_eq!((m.shape.batch, m.shape.seq_k), (64, 4096), "a mix point: its sequences, its longest context");
    assert!(m.key().ends_with("/b64q1k4096h8kv1d128/kv=fp8/page=64/mix=mix64:1"), "{}", m.key());
    assert!(m.label().contains("kv=fp8 page=64 mix=mix64:1"), "{}", m.label());
    // What the point stands for: the mix's batch, planned, with its bytes; refused as a problem.
    let (b, plan, bytes) = m.paged_step().unwrap();
    assert_eq!((b.num_seqs(), b.seq_len(0), b.kv_dtype), (64, 4096, KvDtype::Fp8));
    assert!(!plan.items.is_empty() && bytes.kv_scales > 0.0 && bytes.kv > 0.0);
    let e = m.problem().unwrap_err().to_string();
    assert!(e.contains("no kernel yet"), "{e}");
}

#[test]
fn profiles_and_logs_carry_the_axes_additively() {
    // Schema-1 and schema-2 files written before the axes existed: every point is contiguous bf16.
    for text in [
        include_str!("data/h100-sxm-analytical-v1.json"),
        include_str!("data/peers-cpu-dryrun-v1.json"),
        include_str!("data/peers-cpu-dryrun.json"),
        include_str!("../profiles/h100-sxm-analytical.json"),
    ] {
        let p = Profile::from_json(text).unwrap();
        assert!(p.points.iter().all(|x| x.serving.is_default()));
        // Written again, a default point has no axis fields at all.
        let json = p.to_json();
        assert!(!json.contains("kv_dtype") && !json.contains("page_size") && !json.contains("\"mix\""));
    }
    // A serving point round-trips through a profile and a sweep log, and keys apart from its
    // contiguous twin.
    let mut p = Profile::from_json(include_str!("../profiles/h100-sxm-analytical.json")).unwrap();
    let twin = p.points.iter().find(|x| x.variant == "decode").unwrap().clone();
    let mut paged = twin.clone();
    paged.serving = axes(KvDtype::Fp8, Some(32), Some(Mix { count: 8, seed: 5 }));
    paged.status = PointStatus::Failed { error: "no kernel yet".into() };
    assert_ne!(sw::point_key(&twin), sw::point_key(&paged));
    assert_eq!(sw::point_key(&paged), sw::point_key(&twin) + "/kv=fp8/page=32/mix=mix8:5");
    p.points = vec![twin.clone(), paged.clone()].into();
    let back = Profile::from_json(&p.to_json()).unwrap();
    assert_eq!(back.points, p.points);
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    let pj = &json["points"][1];
    assert_eq!(
        (pj["kv_dtype"].as_str(), pj["page_size"].as_u64(), pj["mix"].as_str()),
        (Some("fp8"), Some(32), Some("mix8:5"))
    );
    let dir = std::env::temp_dir().join(format!("attnjoule-serving-log-{}", std::process::id()));
    let log = dir.join("points.jsonl");
    let _ = std::fs::remove_file(&log);
    // A log holds our own points under a header (of the points' shape).
    let (mut twin, mut paged) = (twin, paged);
    twin.implementation = "attnjoule".into();
    paged.implementation = "attnjoule".into();
    let s = twin.shape;
    let mut w = jsonl::Writer::open(&log, 0).unwrap();
    w.append(&jsonl::Line::Header(jsonl::Header {
        kind: attnjoule::profile::ProfileKind::Measured,
        gpu: p.gpu.clone(),
        created: "2026-11-30".into(),
        tool: None,
        idle_watts: Some(70.0),
        config: serde_json::json!({"spec": {"batch": s.batch, "heads": s.heads, "kv_heads": s.kv_heads, "head_dim": s.head_dim}}),
        schema_version: attnjoule::profile::SCHEMA_VERSION,
    }))
    .unwrap();
    w.append(&jsonl::Line::Point(Box::new(twin.clone()))).unwrap();
    w.append(&jsonl::Line::Point(Box::new(paged.clone()))).unwrap();
    let read = jsonl::read(&log).unwrap();
    assert_eq!(read.points.into_vec(), vec![twin, paged]);
    // A bad axis is a format error naming it, not a default.
    let bad = p.to_json().replace("\"mix8:5\"", "\"mix0:5\"");
    assert!(Profile::from_json(&bad).unwrap_err().to_string().contains("mix"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_attnjoule")).args(args).output().unwrap()
}

#[test]
fn dry_run_lists_serving_points_with_their_step() {
    let base =
        ["sweep", "--backend", "emu", "--dry-run", "--variants", "decode", "--phases", "decode", "--ctx", "40000"];
    let out =
        run(&[&base[..], &["--page-size", "contiguous,64", "--kv-dtype", "bf16,fp8", "--mix", "uniform,mix64:1"]]
            .concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.last().unwrap().starts_with("5 of 5 points"), "{text}");
    let paged: Vec<&&str> = lines.iter().filter(|l| l.contains("no kernel yet")).collect();
    assert_eq!(paged.len(), 4, "{text}");
    assert!(paged.iter().filter(|l| l.contains("64 seqs")).count() == 2, "{text}");
    assert!(
        lines[0].contains("ctx=40000 q=1") && lines[0].contains("GiB") && !lines[0].contains("no kernel"),
        "{text}"
    );
    // Without a page size, fp8 and mixes have nowhere to live: one line saying so.
    for extra in [&["--kv-dtype", "fp8"][..], &["--mix", "mix64:1"], &["--page-size", "48"], &["--mix", "mix0:1"]] {
        let out = run(&[&base[..], extra].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.trim().lines().count() == 1, "{extra:?}: {err}");
    }
}

#[test]
fn the_backend_refuses_serving_points_until_the_kernel_lands() {
    let dir = std::env::temp_dir().join(format!("attnjoule-serving-emu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let cfg = RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Decode],
            phases: vec![Phase::Decode],
            contexts: vec![64],
            masks: vec![MaskRecipe::Causal],
            heads: 2,
            kv_heads: 1,
            head_dim: 64,
            serving: vec![ServingAxes::default(), axes(KvDtype::Fp8, Some(16), None)],
            ..Default::default()
        },
        backend: BackendKind::Emu,
        out: Some(dir.clone()),
        gemm: vec![],
        seed,
        ..Default::default()
    };
    let out = backend::run(&cfg, &mut |_| {}).unwrap();
    let pts = &out.profile.points;
    assert_eq!(pts.len(), 2);
    let contiguous = pts.iter().find(|p| p.serving.is_default()).unwrap();
    let paged = pts.iter().find(|p| !p.serving.is_default()).unwrap();
    assert!(contiguous.serving.is_default() && contiguous.status == PointStatus::Ok, "{:?}", contiguous.status);
    assert_eq!(paged.serving, axes(KvDtype::Fp8, Some(16), None));
    assert!(
        matches!(&paged.status, PointStatus::Failed { error } if error.contains("no kernel yet")),
        "{:?}",
        paged.status
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bytes of the two reference mixes (docs/perf-decode.md quotes them), bf16 against fp8:
/// the cache halves plus its scales, the rest does not move; the plan's additions stay small.
#[test]
fn step_bytes_of_the_reference_mixes() {
    use attnjoule::paged::plan::{plan, PlanOptions};
    use attnjoule::paged::{Allocation, PagedBatch, SeqSpec};
    let seed = 18;
    let mut keys = vec![1usize << 20];
    // 63 short conversations, 64..2048 keys, log-uniform from a fixed mix.
    keys.extend(Mix { count: 64, seed }.lengths(2048)[1..].iter().map(|&k| k.max(64)));
    for (name, keys) in [("1M + 63 short", keys), ("64 x 40K", vec![40_000; 64])] {
        let mut by = Vec::new();
        for kv in [KvDtype::Bf16, KvDtype::Fp8] {
            let seqs: Vec<SeqSpec> = keys.iter().map(|&k| SeqSpec { keys: k, new_tokens: 1 }).collect();
            let b = PagedBatch::allocate(8, 1, 128, 64, kv, &seqs, Allocation::default()).unwrap();
            let masks = b.masks(&MaskRecipe::Causal).unwrap();
            let p = plan(&b, &masks, &PlanOptions::default()).unwrap();
            let (_, w) = attnjoule::work::paged_decode(&b, &masks, &p);
            let mib = |x: f64| x / (1u64 << 20) as f64;
            println!(
                "{name} {kv}: K/V {:.2} MiB, scales {:.2} MiB, Q+O+LSE {:.3} MiB; plan: {} splits, Q re-read {:.3} MiB, \
                 partials {:.3} MiB, metadata {:.3} MiB ({:.2}% of the step); total {:.2} MiB = {:.1} us at 3.0 TB/s, \
                 {:.1} us at 4.3 TB/s",
                mib(w.kv),
                mib(w.kv_scales),
                mib(w.q + w.o + w.lse),
                p.items.len(),
                mib(w.q_reread),
                mib(w.partials),
                mib(w.metadata),
                100.0 * w.plan() / w.step(),
                mib(w.total()),
                w.total() / 3.0e12 * 1e6,
                w.total() / 4.3e12 * 1e6
            );
            assert!(w.plan() < 0.02 * w.step(), "{name} {kv}: the plan adds {} of {}", w.plan(), w.step());
            by.push(w);
        }
        assert_eq!(by[1].kv + by[1].kv_scales, by[0].kv * (128.0 + 2.0) / 256.0);
        assert_eq!((by[1].q, by[1].o, by[1].lse, by[1].q_reread), (by[0].q, by[0].o, by[0].lse, by[0].q_reread));
    }
}

#[test]
fn hostile_serving_points_are_refused_before_allocating() {
    let spec = SweepSpec {
        variants: vec![Variant::Decode],
        phases: vec![Phase::Decode],
        contexts: vec![i32::MAX as usize],
        serving: vec![axes(KvDtype::Fp8, Some(16), Some(Mix { count: 4096, seed: 1 }))],
        ..Default::default()
    };
    let pts = sw::enumerate(&spec).unwrap();
    let e = pts[0].paged_step().unwrap_err().to_string();
    assert!(e.contains("beyond any GPU"), "{e}");
    // compare keeps serving points apart from their contiguous twins.
    let p = Profile::from_json(include_str!("../profiles/h100-sxm-analytical.json")).unwrap();
    let mut q = p.clone();
    q.points.modify_all(|x| {
        x.serving.kv_dtype = KvDtype::Fp8;
        x.serving.page_size = Some(64);
    });
    assert!(sw::compare::compare(&p, &q, None, None).is_empty());
    let rows = sw::compare::compare(&q, &q, Some("decode"), None);
    assert!(!rows.is_empty() && rows.iter().all(|r| r.a == "roofline:decode/kv=fp8/page=64"), "{:?}", rows.first());
}

//! The profiler without a GPU: the measurement protocol over a simulated energy counter and power
//! trace, the JSONL log's recovery, schema round trip, sharding, merge refusals, a whole sweep
//! over a simulated GPU (resume included), and the CLI's errors.

use attnjoule::energy::{GpuState, SimGpu};
use attnjoule::mask::MaskRecipe;
use attnjoule::ops::{Attention, Options};
use attnjoule::profile::*;
use attnjoule::sweep::backend::{self, RunConfig, Worker, WorkerFactory};
use attnjoule::sweep::jsonl::{self, Line};
use attnjoule::sweep::protocol::{self, ProtocolConfig, SimTarget};
use attnjoule::sweep::{self as sw, merge, PointSpec, Shard, SweepSpec};
use attnjoule::work::Variant;
use std::sync::Arc;

fn proto(seed: u64) -> ProtocolConfig {
    ProtocolConfig {
        warmup_calls: 3,
        min_seconds: 1.0,
        reps: 5,
        gap_min_s: 0.1,
        gap_max_s: 0.5,
        seed,
        ..Default::default()
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

#[test]
fn protocol_counter_gives_exact_joules_per_call() {
    // 3.7 ms calls at 520 W over a 65 W idle board.
    let gpu = SimGpu::new(true, 0.01);
    let mut t = SimTarget::new(gpu.clone(), 3.7e-3, 520.0, 65.0, 4);
    let idle = protocol::idle_watts(&mut t, &gpu, 2.0).unwrap();
    assert!(close(idle, 65.0, 1e-6), "idle {idle}");
    let m = protocol::measure(&mut t, &gpu, Some(idle), &proto(7)).unwrap();
    assert_eq!(m.method, EnergyMethod::Counter);
    assert_eq!(m.reps.len(), 5);
    for r in &m.reps {
        assert!(r.device_seconds >= 1.0, "window {} s shorter than min_seconds", r.device_seconds);
        assert_eq!(r.calls, (1.0f64 / 3.7e-3).ceil() as u64);
    }
    assert!(close(m.seconds.median, 3.7e-3, 1e-9), "{}", m.seconds.median);
    // the counter floors to mJ: at most 1 mJ per window of ~271 calls
    assert!(close(m.joules.median, 520.0 * 3.7e-3, 1e-5), "{}", m.joules.median);
    let above = m.joules_above_idle.unwrap().median;
    assert!(close(above, (520.0 - 65.0) * 3.7e-3, 1e-5), "{above}");
    assert!(close(m.watts, 520.0, 1e-5));
    assert!(m.seconds.cv < 1e-9 && m.joules.cv < 1e-5);
    assert!(!m.throttled);
    // buffer sets rotate evenly (warm-up + windows)
    let (lo, hi) = (t.launches.iter().min().unwrap(), t.launches.iter().max().unwrap());
    assert!(hi - lo <= 1, "rotation {:?}", t.launches);
}

#[test]
fn protocol_without_counter_integrates_sampled_power() {
    let gpu = SimGpu::new(false, 0.01);
    let mut t = SimTarget::new(gpu.clone(), 0.25, 610.0, 70.0, 1);
    let idle = protocol::idle_watts(&mut t, &gpu, 2.0).unwrap();
    assert!(close(idle, 70.0, 1e-9), "idle {idle}");
    let m = protocol::measure(&mut t, &gpu, Some(idle), &proto(1)).unwrap();
    assert_eq!(m.method, EnergyMethod::SampledPower);
    assert!(close(m.seconds.median, 0.25, 1e-12));
    assert!(close(m.joules.median, 610.0 * 0.25, 1e-9), "{}", m.joules.median);
    assert!(close(m.joules_above_idle.unwrap().median, 540.0 * 0.25, 1e-9));
    assert!(m.reps.iter().all(|r| r.energy.samples >= 100));
}

#[test]
fn protocol_is_deterministic_and_flags_throttling() {
    let run = |throttle: bool| {
        let gpu = SimGpu::new(true, 0.01);
        if throttle {
            gpu.set_state(GpuState { throttle_reasons: vec!["sw_power_cap".into()], ..Default::default() });
        }
        let mut t = SimTarget::new(gpu.clone(), 1.3e-4, 300.0, 60.0, 3);
        protocol::measure(&mut t, &gpu, None, &proto(42)).unwrap()
    };
    let (a, b) = (run(false), run(false));
    assert_eq!(a, b);
    assert!(a.joules_above_idle.is_none());
    let c = run(true);
    assert!(c.throttled && c.start.throttled());
}

#[test]
fn protocol_reads_gpu_state_while_the_window_runs() {
    // NVML reports what the GPU is doing now: power capping while the calls run, idle once they
    // are done. The point's start/end states (and its throttle flag) must come from inside the
    // windows, not from the idle moments after a synchronize.
    struct Capped(SimTarget);
    impl protocol::Target for Capped {
        fn launch(&mut self, set: usize) -> attnjoule::Result<()> {
            let busy = GpuState {
                sm_clock_mhz: Some(1500),
                throttle_reasons: vec!["sw_power_cap".into()],
                ..Default::default()
            };
            self.0.gpu.set_state(busy);
            self.0.launch(set)
        }
        fn sets(&self) -> usize {
            self.0.sets()
        }
        fn record(&mut self) -> attnjoule::Result<attnjoule::device::Timestamp> {
            self.0.record()
        }
        fn elapsed_s(
            &mut self,
            a: attnjoule::device::Timestamp,
            b: attnjoule::device::Timestamp,
        ) -> attnjoule::Result<f64> {
            self.0.elapsed_s(a, b)
        }
        fn synchronize(&mut self) -> attnjoule::Result<()> {
            let idle =
                GpuState { sm_clock_mhz: Some(345), throttle_reasons: vec!["gpu_idle".into()], ..Default::default() };
            self.0.gpu.set_state(idle);
            self.0.synchronize()
        }
        fn idle(&mut self, s: f64) {
            self.0.idle(s)
        }
    }
    let gpu = SimGpu::new(true, 0.01);
    let mut t = Capped(SimTarget::new(gpu.clone(), 2e-3, 700.0, 70.0, 2));
    let m = protocol::measure(&mut t, &gpu, None, &proto(5)).unwrap();
    assert_eq!((m.start.sm_clock_mhz, m.end.sm_clock_mhz), (Some(1500), Some(1500)), "{:?} {:?}", m.start, m.end);
    assert!(m.throttled && m.start.throttled() && m.end.throttled());
}

#[test]
fn protocol_lengthens_a_window_the_warmup_underestimated() {
    // A target whose warm-up launches look 10x slower than steady state: the first window comes
    // out short and must be redone longer.
    struct Fast {
        inner: SimTarget,
        n: u32,
    }
    impl protocol::Target for Fast {
        fn launch(&mut self, set: usize) -> attnjoule::Result<()> {
            self.n += 1;
            let s = if self.n <= 3 { 10e-3 } else { 1e-3 };
            self.inner.gpu.run(s, 400.0);
            self.inner.launches[set] += 1;
            Ok(())
        }
        fn sets(&self) -> usize {
            1
        }
        fn record(&mut self) -> attnjoule::Result<attnjoule::device::Timestamp> {
            self.inner.record()
        }
        fn elapsed_s(
            &mut self,
            a: attnjoule::device::Timestamp,
            b: attnjoule::device::Timestamp,
        ) -> attnjoule::Result<f64> {
            self.inner.elapsed_s(a, b)
        }
        fn synchronize(&mut self) -> attnjoule::Result<()> {
            Ok(())
        }
        fn idle(&mut self, s: f64) {
            self.inner.idle(s)
        }
    }
    let gpu = SimGpu::new(true, 0.01);
    let mut t = Fast { inner: SimTarget::new(gpu.clone(), 0.0, 0.0, 50.0, 1), n: 0 };
    let m = protocol::measure(&mut t, &gpu, None, &proto(3)).unwrap();
    assert!(m.reps.iter().all(|r| r.device_seconds >= 1.0), "{:?}", m.reps);
    assert!(close(m.seconds.median, 1e-3, 1e-9));
}

fn sample_point(variant: &str, ctx: usize, status: PointStatus) -> Point {
    Point {
        variant: variant.into(),
        implementation: "attnjoule".into(),
        phase: Phase::Prefill,
        mask: MaskRecipe::Causal,
        shape: attnjoule::Shape::prefill(1, ctx, 8, 1, 128),
        serving: Default::default(),
        status,
        flops: 1e12,
        min_bytes: 1e9,
        seconds: Some(Stat::from_samples(&[1e-3, 1.1e-3, 0.9e-3]).unwrap()),
        joules: Some(Stat::exact(0.5)),
        joules_above_idle: Some(Stat::exact(0.4)),
        watts: Some(500.0),
        energy_method: EnergyMethod::Counter,
        throttled: false,
        calls: Some(3000),
        counters: None,
        ncu: [("dram_throughput_pct".to_string(), 71.5)].into_iter().collect(),
        note: None,
        detail: Some(Box::new(PointDetail {
            device: Some(1),
            idle_watts: Some(66.0),
            rep_seconds: vec![1e-3; 3],
            start: Some(GpuState {
                sm_clock_mhz: Some(1980),
                throttle_reasons: vec!["gpu_idle".into()],
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

fn profile(gpu: &str, driver: &str, points: Vec<Point>) -> Profile {
    Profile {
        schema_version: SCHEMA_VERSION,
        kind: ProfileKind::Measured,
        gpu: GpuInfo { name: gpu.into(), driver: Some(driver.into()), ..Default::default() },
        created: "2026-11-23".into(),
        tool: None,
        peaks: None,
        idle_watts: Some(66.0),
        points: points.into(),
        gemm: vec![],
        notes: vec![],
    }
}

#[test]
fn schema_round_trip_with_all_statuses() {
    let p = profile(
        "NVIDIA H100 80GB HBM3",
        "580.1",
        vec![
            sample_point("flash", 4096, PointStatus::Ok),
            sample_point("dense", 65536, PointStatus::Infeasible { need_gib: 128.1, have_gib: 79.0 }),
            sample_point("flash", 8192, PointStatus::Failed { error: "variant flash is not built yet".into() }),
        ],
    );
    let back = Profile::from_json(&p.to_json()).unwrap();
    assert_eq!(back, p);
    // A point without the optional detail (older writers, peers) still reads.
    let mut v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    v["points"][0].as_object_mut().unwrap().remove("detail");
    let q = Profile::from_json(&v.to_string()).unwrap();
    assert!(q.points[0].detail.is_none());
}

#[test]
fn jsonl_drops_a_cut_last_line_and_appends_after_it() {
    let dir = tempdir("jsonl");
    let path = dir.join("points.jsonl");
    let mut w = jsonl::Writer::open(&path, 0).unwrap();
    let h = jsonl::Header {
        kind: ProfileKind::Measured,
        gpu: GpuInfo { name: "g".into(), ..Default::default() },
        created: "2026-11-23".into(),
        tool: None,
        idle_watts: None,
        config: serde_json::Value::Null,
        schema_version: SCHEMA_VERSION,
    };
    w.append(&Line::Header(h.clone())).unwrap();
    for ctx in [1024, 2048, 4096] {
        w.append(&Line::Point(Box::new(sample_point("flash", ctx, PointStatus::Ok)))).unwrap();
    }
    drop(w);
    // A crash in the middle of the 4th write.
    let full = serde_json::to_string(&Line::Point(Box::new(sample_point("flash", 8192, PointStatus::Ok)))).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, &full.as_bytes()[..full.len() / 2]).unwrap();
    drop(f);
    let log = jsonl::read(&path).unwrap();
    assert_eq!(log.header, Some(h));
    assert_eq!(log.points.len(), 3);
    assert_eq!(log.warnings.len(), 1);
    assert!(log.warnings[0].contains("truncated last line"), "{}", log.warnings[0]);
    // Resume appends after the last good line.
    let mut w = jsonl::Writer::open(&path, log.valid_len).unwrap();
    w.append(&Line::Point(Box::new(sample_point("flash", 8192, PointStatus::Ok)))).unwrap();
    let log = jsonl::read(&path).unwrap();
    assert_eq!(log.points.len(), 4);
    assert!(log.warnings.is_empty());
    // A corrupt line in the middle is an error naming the line, not a silent skip.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"point\": garbage";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let e = jsonl::read(&path).unwrap_err().to_string();
    assert!(e.contains(":3:"), "{e}");
    // So is a line of valid JSON that is not one record (was: `{}` and unknown keys read as
    // nothing, two records on one line read as both).
    let good = text.lines().nth(2).unwrap().to_string();
    for bad in [
        "{}".to_string(),
        "{\"points\": {}}".to_string(),
        "[1, 2]".to_string(),
        good.replacen("{\"point\":", "{\"gemm\": {\"m\": 1, \"n\": 1, \"k\": 1}, \"point\":", 1),
        good.replacen("\"flash\"", "\"flash\", \"mask\": 3", 1),
    ] {
        let mut lines: Vec<&str> = text.lines().collect();
        lines[2] = &bad;
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let e = jsonl::read(&path).unwrap_err().to_string();
        assert!(e.contains(":3: not a valid record") && !e.contains('\n'), "{bad}: {e}");
    }
    // A blank line carries nothing and is no error.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    assert_eq!(jsonl::read(&path).unwrap().points.len(), 4);
}

#[test]
fn merge_joins_shards_and_refuses_mixtures() {
    let a = profile("NVIDIA H100 80GB HBM3", "580.1", vec![sample_point("flash", 1024, PointStatus::Ok)]);
    let b = profile(
        "NVIDIA H100 80GB HBM3",
        "580.1",
        vec![
            sample_point("flash", 2048, PointStatus::Ok),
            sample_point("flash", 1024, PointStatus::Failed { error: "x".into() }),
        ],
    );
    let m = merge::merge(vec![("a".into(), a.clone()), ("b".into(), b.clone())]).unwrap();
    assert_eq!(m.points.len(), 2);
    assert!(m.points.iter().all(|p| p.status == PointStatus::Ok), "the ok duplicate wins");
    let other_gpu = profile("NVIDIA A100-SXM4-80GB", "580.1", vec![]);
    let e = merge::merge(vec![("a".into(), a.clone()), ("c".into(), other_gpu)]).unwrap_err().to_string();
    assert!(e.contains("different GPU models"), "{e}");
    let other_driver = profile("NVIDIA H100 80GB HBM3", "575.0", vec![]);
    let e = merge::merge(vec![("a".into(), a.clone()), ("d".into(), other_driver)]).unwrap_err().to_string();
    assert!(e.contains("different drivers"), "{e}");
    let mut emulated = a.clone();
    emulated.kind = ProfileKind::Emulated;
    assert!(merge::merge(vec![("a".into(), a), ("e".into(), emulated)]).is_err());
}

#[test]
fn compare_ratios_match_configurations() {
    let ours = profile(
        "g",
        "d",
        vec![sample_point("flash", 1024, PointStatus::Ok), sample_point("flash", 2048, PointStatus::Ok)],
    );
    let mut peer_pt = sample_point("sdpa_flash", 1024, PointStatus::Ok);
    peer_pt.implementation = "torch".into();
    peer_pt.seconds = Some(Stat::exact(2e-3));
    peer_pt.joules = Some(Stat::exact(1.0));
    let peer = profile("g", "d", vec![peer_pt]);
    let rows = sw::compare::compare(&ours, &peer, None, None);
    assert_eq!(rows.len(), 1, "only ctx 1024 is in both");
    assert!(close(rows[0].time_ratio, 0.5, 1e-12) && close(rows[0].joules_ratio.unwrap(), 0.5, 1e-12));
    assert_eq!(rows[0].b, "torch:sdpa_flash");
}

/// A simulated GPU worker: the real protocol over SimGpu, call time from the work count.
struct SimWorker {
    mem: usize,
    proto: ProtocolConfig,
    /// How often its energy counter moves, as the idle baseline would report it.
    counter_period: Option<f64>,
}

impl Worker for SimWorker {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Measured
    }
    fn info(&self) -> GpuInfo {
        GpuInfo {
            name: "Simulated GPU".into(),
            driver: Some("sim".into()),
            energy_counter_period_s: self.counter_period,
            ..Default::default()
        }
    }
    fn idle_watts(&self) -> Option<f64> {
        Some(60.0)
    }
    fn point(&mut self, spec: &PointSpec, _seed: u64) -> Point {
        let problem = match spec.problem() {
            Ok(p) => p,
            Err(e) => return backend::failed(spec, e),
        };
        let att = match Attention::new(spec.variant, &problem, &Options::default()) {
            Ok(a) => a,
            Err(e) => return backend::failed(spec, e),
        };
        if let Some((need_gib, have_gib)) = sw::infeasible(att.footprint_bytes() as u128, self.mem as u128) {
            return backend::blank_point(spec, PointStatus::Infeasible { need_gib, have_gib });
        }
        let gpu = SimGpu::new(true, 0.01);
        let call_s = att.work().executed_flops / 100e12;
        let mut t = SimTarget::new(gpu.clone(), call_s, 400.0, 60.0, 2);
        match protocol::measure(&mut t, &gpu, Some(60.0), &self.proto) {
            Ok(m) => backend::measured_point(backend::blank_point(spec, PointStatus::Ok), &m, Some(60.0), 2),
            Err(e) => backend::failed(spec, e),
        }
    }
    fn gemm(&mut self, m: usize, n: usize, k: usize) -> attnjoule::Result<GemmPoint> {
        let f = 2.0 * (m * n * k) as f64;
        Ok(GemmPoint {
            m: m as u64,
            n: n as u64,
            k: k as u64,
            seconds: Stat::exact(f / 500e12),
            joules: Some(Stat::exact(f * 1e-12)),
            energy_method: EnergyMethod::Counter,
        })
    }
}

fn sim_factory(mem: usize) -> WorkerFactory {
    Arc::new(move |_, cfg: &RunConfig| {
        Ok(Box::new(SimWorker { mem, proto: cfg.protocol.clone(), counter_period: None }) as Box<dyn Worker>)
    })
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "attnjoule-test-{name}-{}-{}",
        std::process::id(),
        attnjoule::reference::fresh_seed()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sim_config(out: &std::path::Path) -> RunConfig {
    RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Dense, Variant::Flash],
            phases: vec![Phase::Prefill, Phase::Decode],
            contexts: vec![1024, 4096, 65536],
            decode_tokens: vec![1, 16],
            masks: vec![MaskRecipe::Causal],
            ..Default::default()
        },
        protocol: ProtocolConfig { min_seconds: 0.05, reps: 3, warmup_calls: 2, ..Default::default() },
        out: Some(out.to_path_buf()),
        gemm: vec![(256, 256, 256)],
        ..Default::default()
    }
}

#[test]
fn sweep_over_simulated_gpu_records_ok_infeasible_failed_and_resumes() {
    let dir = tempdir("sweep");
    let cfg = sim_config(&dir);
    let mut lines = Vec::new();
    let out = backend::run_with(&cfg, sim_factory(80 << 30), &mut |l| lines.push(l.to_string())).unwrap();
    // dense prefill 3 + flash prefill 3 + dense decode 3x2 = 12 points
    let p = &out.profile;
    assert_eq!(p.points.len(), 12);
    let by = |v: &str, ph: Phase, ctx: usize| {
        p.points
            .iter()
            .find(|x| x.variant == v && x.phase == ph && x.shape.seq_k == ctx && x.shape.seq_q != 16)
            .unwrap()
    };
    assert_eq!(by("dense", Phase::Prefill, 4096).status, PointStatus::Ok);
    match &by("dense", Phase::Prefill, 65536).status {
        PointStatus::Infeasible { need_gib, have_gib } => assert!(*need_gib > 128.0 && *have_gib == 80.0),
        s => panic!("dense 64K prefill should not fit 80 GiB: {s:?}"),
    }
    assert_eq!(by("flash", Phase::Prefill, 1024).status, PointStatus::Ok);
    let ok = by("dense", Phase::Decode, 65536);
    assert_eq!(ok.status, PointStatus::Ok);
    assert!(ok.seconds.unwrap().median > 0.0 && ok.joules.unwrap().median > 0.0);
    assert_eq!(p.gemm.len(), 1);
    assert!(lines.iter().any(|l| l.contains("[12/12]") && l.contains("ETA")), "{lines:?}");
    assert!(out.files.iter().any(|f| f.extension().is_some_and(|e| e == "csv")));
    let csv = std::fs::read_to_string(dir.join("profile.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    let loaded = Profile::load(&dir.join("profile.json")).unwrap();
    assert_eq!(loaded.points.len(), 12);
    for (a, b) in loaded.points.iter().zip(&out.profile.points) {
        assert_eq!((sw::point_key(a), &a.status), (sw::point_key(b), &b.status));
        // JSON keeps 17 significant digits; the last may differ.
        assert_eq!(a.seconds.map(|s| (s.median * 1e12).round()), b.seconds.map(|s| (s.median * 1e12).round()));
    }

    // A second run without --resume refuses to overwrite the log.
    let e = backend::run_with(&cfg, sim_factory(80 << 30), &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");

    // Cut the log after 5 points plus half a line, then resume: the rest is measured once.
    let log = dir.join("points.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let keep: Vec<&str> = text.lines().take(1 + 5).collect();
    let cut = text.lines().nth(7).unwrap();
    std::fs::write(&log, keep.join("\n") + "\n" + &cut[..cut.len() / 3]).unwrap();
    let mut lines = Vec::new();
    let cfg2 = RunConfig { resume: true, ..cfg.clone() };
    let out2 = backend::run_with(&cfg2, sim_factory(80 << 30), &mut |l| lines.push(l.to_string())).unwrap();
    assert!(lines.iter().any(|l| l.contains("truncated last line")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("5 points done, 7 to go")), "{lines:?}");
    assert_eq!(out2.profile.points.len(), 12);
    let keys: std::collections::HashSet<String> = out2.profile.points.iter().map(sw::point_key).collect();
    assert_eq!(keys.len(), 12);
    assert_eq!(out2.profile.gemm.len(), 1, "GEMM point kept once");
}

#[test]
fn shards_then_merge_equal_one_sweep() {
    let dir = tempdir("shards");
    let base = sim_config(&dir);
    let all: Vec<String> = sw::enumerate(&base.spec).unwrap().iter().map(|p| p.key()).collect();
    let mut inputs = Vec::new();
    for i in 0..3 {
        let cfg = RunConfig { shard: Some(Shard { index: i, count: 3 }), ..base.clone() };
        let out = backend::run_with(&cfg, sim_factory(80 << 30), &mut |_| {}).unwrap();
        assert!(out.log.ends_with(format!("points-shard{i}of3.jsonl")));
        let (p, _) = merge::load_any(&out.log).unwrap();
        inputs.push((out.log.display().to_string(), p));
    }
    let m = merge::merge(inputs).unwrap();
    let mut got: Vec<String> = m.points.iter().map(sw::point_key).collect();
    let mut want = all.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every point exactly once");
    assert_eq!(m.gemm.len(), 1, "GEMM from shard 0 only");
}

/// The attnjoule binary: cargo's, or $ATTNJOULE where the test executable travelled without it
/// (scripts/gpu-run.sh on a GPU machine without cargo).
fn bin() -> std::process::Command {
    std::process::Command::new(std::env::var_os("ATTNJOULE").unwrap_or_else(|| env!("CARGO_BIN_EXE_attnjoule").into()))
}

#[test]
fn cli_without_a_usable_gpu_says_so_in_one_line() {
    // CUDA device 999 exists nowhere, so this runs nothing on any machine. Without a driver the
    // commands say so (and nothing else); with one, they refuse the device in one error line.
    let driver = attnjoule::device::cuda::driver_present();
    for args in [
        &["sweep", "--ctx", "1024", "--devices", "999"][..],
        &["ncu", "--variant", "dense", "--ctx", "1024", "--device", "999"][..],
    ] {
        let out = bin().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {err}");
        if driver {
            let e = errors[0];
            assert!(e.contains("CUDA device 999 does not exist") || e.contains("--backend emu"), "{args:?}: {err}");
        } else {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains("no CUDA driver found") && err.contains("--backend emu"), "{err}");
        }
    }
}

#[test]
fn cli_rejects_bad_flags_and_mixed_merges() {
    let out = bin().args(["sweep", "--backend", "emu", "--shard", "3/2"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard"));
    let out = bin().args(["sweep", "--dry-run", "--shard", "1/4"]).output().unwrap();
    assert!(out.status.success());
    // The GPU default: flash, flash-hopper, decode, dense (flash-hopper adds 11 prefill points).
    assert!(String::from_utf8_lossy(&out.stdout).contains("14 of 55 points"));
    // Closed sets are checked by the argument parser, which lists the choices, in one line.
    let out = bin().args(["sweep", "--backend", "emu", "--variants", "flash,sparse"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.trim_end().lines().count() == 1, "{err}");
    assert!(
        err.contains("invalid value 'sparse'")
            && err.contains("possible values: dense, flash, flash-hopper, flash-hopper-fp8, decode"),
        "{err}"
    );
    for (args, needle) in [
        (&["sweep", "--backend", "gpu"][..], "possible values: cuda, emu"),
        (&["sweep", "--phases", "prefil"], "possible values: prefill, decode"),
        (&["ncu", "--phase", "Decode"], "possible values: prefill, decode"),
        (&["emu", "--variant", "sparse"], "possible values: dense, flash, flash-hopper, flash-hopper-fp8, decode"),
        (&["estimate", "--policies", "window,sparse"], "possible values: all, kv-cache, no-cache"),
        (&["mask", "--mask", "bigbird:64:1"], "expected bigbird:<block>:<local>:<global>:<random>:<seed>"),
        (&["sweep", "--mask", "causal,strided:64:1:0", "--dry-run"], "stride must be at least 1"),
        (&["sweep", "--shard", "3/2", "--dry-run"], "0 <= i < n"),
    ] {
        let out = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.trim_end().lines().count() == 1, "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
    }
    // The help lists the choices.
    let out = bin().args(["sweep", "-h"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[possible values: cuda, emu]") && help.contains("bigbird:<block>"), "{help}");
    let dir = tempdir("cli-merge");
    let a = profile("NVIDIA H100 80GB HBM3", "580.1", vec![sample_point("flash", 1024, PointStatus::Ok)]);
    let b = profile("NVIDIA A100-SXM4-80GB", "580.1", vec![sample_point("flash", 2048, PointStatus::Ok)]);
    a.save(&dir.join("a.json")).unwrap();
    b.save(&dir.join("b.json")).unwrap();
    let out = bin()
        .arg("merge")
        .arg(dir.join("a.json"))
        .arg(dir.join("b.json"))
        .arg("-o")
        .arg(dir.join("m.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("different GPU models"));
    let svg = dir.join("ratios.svg");
    let out =
        bin().arg("compare").arg(dir.join("a.json")).arg(dir.join("a.json")).arg("--plot").arg(&svg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1.000"));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    // merging two shards of one GPU writes the profile, and its CSV and plots where asked
    let c = profile("NVIDIA H100 80GB HBM3", "580.1", vec![sample_point("flash", 4096, PointStatus::Ok)]);
    c.save(&dir.join("c.json")).unwrap();
    let plots = dir.join("plots");
    let out = bin()
        .arg("merge")
        .arg(dir.join("a.json"))
        .arg(dir.join("c.json"))
        .arg("-o")
        .arg(dir.join("m.json"))
        .arg("--csv")
        .arg(dir.join("m.csv"))
        .arg("--plots")
        .arg(&plots)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(Profile::load(&dir.join("m.json")).unwrap().points.len(), 2);
    assert!(dir.join("m.csv").exists() && plots.join("profile-seconds.svg").exists());
}

/// Runs `code` in python3 with the peer script loaded as `t` (and `json`, `sys` imported; torch
/// is imported only in the script's main()); its stdout. None when python3 is missing.
fn peer_python(code: &str) -> Option<Vec<u8>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/torch_attention.py");
    let prelude = format!(
        "import importlib.util, json, sys\nspec = importlib.util.spec_from_file_location(\"peer\", {script:?})\n\
         t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)\n"
    );
    let out = match std::process::Command::new("python3").arg("-c").arg(prelude + code).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("python3 not available ({e}); the peer script cannot be checked here");
            return None;
        }
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(out.stdout)
}

#[test]
fn peer_script_writes_the_profile_schema() {
    // The peer script's schema writer and work counts, without torch (imported only in main()).
    let code = r#"
class A: reps = 5; min_seconds = 1.0; gap = (0.2, 0.6)
pts = []
for ms, sq, sk in [("causal", 1024, 1024), ("window:4096", 1, 32768), ("longformer:128:1:1", 2048, 2048)]:
    m = t.parse_mask(ms); f, b = t.work(m, 1, sq, sk, 8, 1, 128)
    pts.append({"variant": "flex", "implementation": "torch-x", "phase": "prefill" if sq == sk else "decode",
        "mask": m["recipe"], "shape": {"batch": 1, "seq_q": sq, "seq_k": sk, "heads": 8, "kv_heads": 1, "head_dim": 128},
        "status": "ok", "flops": f, "min_bytes": b, "energy_method": "counter", "throttled": False, "ncu": {},
        "note": None, "seconds": t.stat([1e-3, 2e-3]), "joules": t.stat([0.5, 0.7]), "joules_above_idle": None,
        "watts": 400.0, "calls": 10, "detail": {"idle_watts": 60.0, "buffer_sets": 2, "rep_seconds": [1e-3],
        "start": {"sm_clock_mhz": 1980, "mem_clock_mhz": None, "temperature_c": 40, "power_w": 300.0,
                   "throttle_reasons": ["gpu_idle"]}}})
pts.append(dict(pts[0], status="infeasible", need_gib=200.0, have_gib=79.0, variant="sdpa_flash"))
print(json.dumps(t.profile({"name": "g"}, 60.0, pts, "torch-x", A)))
"#;
    let Some(out) = peer_python(code) else { return };
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("\"schema_version\": 2"), "the script writes the current schema: {text}");
    let p = Profile::from_json(&text).unwrap();
    assert_eq!(p.points.len(), 4);
    let masks: Vec<String> = p.points.iter().map(|x| x.mask.to_string()).collect();
    assert_eq!(masks, ["causal", "window:4096", "longformer:128:1:1", "causal"], "recipes, spelled as ours");
    // The script's work counts agree with the crate's for the same problems.
    let causal = attnjoule::Problem::new(attnjoule::Shape::prefill(1, 1024, 8, 1, 128), attnjoule::Mask::Causal);
    assert_eq!(p.points[0].flops, attnjoule::work::useful_flops(&causal));
    assert_eq!(p.points[0].min_bytes, attnjoule::work::flash(&causal, 128, 64).min_bytes);
    let win =
        attnjoule::Problem::new(attnjoule::Shape::decode(1, 1, 32768, 8, 1, 128), attnjoule::Mask::causal_window(4096));
    assert_eq!(p.points[1].flops, attnjoule::work::useful_flops(&win));
    assert_eq!(p.points[1].min_bytes, attnjoule::work::decode(&win, 1).min_bytes);
    let lf = attnjoule::Problem::new(
        attnjoule::Shape::prefill(1, 2048, 8, 1, 128),
        attnjoule::Mask::BlockSparse(attnjoule::BlockLayout::longformer(2048, 2048, 128, 1, 1)),
    );
    assert_eq!(p.points[2].flops, attnjoule::work::useful_flops(&lf));
    assert!(matches!(p.points[3].status, PointStatus::Infeasible { .. }));
}

/// A factory whose workers report different GPUs per ordinal.
fn mixed_factory() -> WorkerFactory {
    struct Named(SimWorker, &'static str);
    impl Worker for Named {
        fn kind(&self) -> ProfileKind {
            ProfileKind::Measured
        }
        fn info(&self) -> GpuInfo {
            GpuInfo { name: self.1.into(), driver: Some("sim".into()), ..Default::default() }
        }
        fn idle_watts(&self) -> Option<f64> {
            Some(60.0)
        }
        fn point(&mut self, spec: &PointSpec, seed: u64) -> Point {
            self.0.point(spec, seed)
        }
        fn gemm(&mut self, m: usize, n: usize, k: usize) -> attnjoule::Result<GemmPoint> {
            self.0.gemm(m, n, k)
        }
    }
    Arc::new(|ordinal, cfg: &RunConfig| {
        let name = if ordinal == 0 { "NVIDIA H100 80GB HBM3" } else { "NVIDIA A100-SXM4-80GB" };
        Ok(Box::new(Named(SimWorker { mem: 80 << 30, proto: cfg.protocol.clone(), counter_period: None }, name))
            as Box<dyn Worker>)
    })
}

#[test]
fn several_devices_share_the_points_and_must_match() {
    let dir = tempdir("devices");
    let cfg = RunConfig { devices: vec![0, 1, 2], ..sim_config(&dir) };
    let out = backend::run_with(&cfg, sim_factory(80 << 30), &mut |_| {}).unwrap();
    let keys: std::collections::HashSet<String> = out.profile.points.iter().map(sw::point_key).collect();
    assert_eq!((out.profile.points.len(), keys.len()), (12, 12), "each point once across 3 workers");
    assert_eq!(out.profile.gemm.len(), 1, "GEMM calibration once");
    let dir = tempdir("devices-mixed");
    let cfg = RunConfig { devices: vec![0, 1], ..sim_config(&dir) };
    let e = backend::run_with(&cfg, mixed_factory(), &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("mixes GPU models"), "{e}");
    assert!(!dir.join("points.jsonl").exists(), "nothing written when refused");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_sweep_measures_time_and_energy() {
    let dir = tempdir("gpu-sweep");
    let cfg = RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Dense, Variant::Flash, Variant::Decode],
            phases: vec![Phase::Prefill, Phase::Decode],
            contexts: vec![1024, 4096],
            ..Default::default()
        },
        protocol: ProtocolConfig { min_seconds: 0.3, reps: 3, ..Default::default() },
        out: Some(dir.clone()),
        idle_seconds: 1.0,
        gemm: vec![(4096, 4096, 4096)],
        seed: attnjoule::reference::fresh_seed(),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let out = backend::run(&cfg, &mut |l| {
        println!("{l}");
        lines.push(l.to_string())
    })
    .unwrap();
    // Every point fits an 80 GB H100 at 1K and 4K and every kernel is built: all must be measured
    // (a variant that fails to launch must fail this test, not hide behind the others).
    let bad: Vec<String> =
        out.profile.points.iter().filter(|p| p.status != PointStatus::Ok).map(|p| format!("{p:?}")).collect();
    assert!(bad.is_empty(), "points not measured: {bad:#?}\n{lines:#?}");
    let idle = out.profile.idle_watts.unwrap();
    // An idle H100 draws tens of watts: catches mW/W and mJ/J slips in the idle window.
    assert!(idle > 10.0 && idle < 300.0, "idle {idle} W");
    for p in &out.profile.points {
        let (s, j, w) = (p.seconds.unwrap(), p.joules.unwrap(), p.watts.unwrap());
        assert!(s.median > 0.0 && j.median > 0.0, "{p:?}");
        // Board power between idle-ish and the H100's 700 W limit (with margin).
        assert!(w > 0.5 * idle && w < 1000.0, "{} W: {p:?}", w);
        // Joules per call come from the host-timed energy window, seconds per call from CUDA
        // events: they must agree through the window's average power (event ms vs s, counter mJ
        // vs J, a window that is not the timed one would all break this).
        let implied = w * s.median;
        assert!((j.median / implied - 1.0).abs() < 0.15, "J/call {} vs W x s/call {implied}: {p:?}", j.median);
        assert!(p.joules_above_idle.unwrap().median < j.median);
        assert!(matches!(p.energy_method, EnergyMethod::Counter | EnergyMethod::SampledPower));
        let d = p.detail.as_ref().unwrap();
        assert!(d.rep_seconds.len() == 3 && d.buffer_sets.unwrap() >= 2, "{d:?}");
        // Every window lasted at least min_seconds of device time.
        assert!(d.rep_seconds.iter().zip(&d.rep_calls).all(|(s, &n)| s * n as f64 >= 0.299), "{d:?}");
    }
    // cuBLAS bf16 4096^3: hundreds of TFLOP/s on an H100 (a layout or unit slip is far off).
    assert_eq!(out.profile.gemm.len(), 1, "{lines:#?}");
    let g = &out.profile.gemm[0];
    let tflops = g.flops() / g.seconds.median / 1e12;
    assert!(tflops > 100.0 && tflops < 1200.0, "GEMM {tflops} TFLOP/s");
    assert!(out.profile.gpu.uuid.is_some());
    assert!(out.files.iter().any(|f| f.extension().is_some_and(|e| e == "svg")));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_ncu_command_runs_one_call() {
    let out = bin().args(["ncu", "--variant", "dense", "--ctx", "1024"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("attnjoule.dense.prefill.ctx1024.q1024"));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_nvml_source_counts_and_samples() {
    use attnjoule::energy::{EnergySource, NvmlSource};
    let src = NvmlSource::new(0, std::time::Duration::from_millis(10)).unwrap();
    let info = src.info().unwrap();
    assert!(!info.name.is_empty() && info.power_limit_w.unwrap_or(0.0) > 0.0);
    let t0 = src.now();
    let e0 = src.energy_mj().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (t1, e1) = (src.now(), src.energy_mj().unwrap());
    let samples = src.samples(t0, t1);
    assert!(samples.len() >= 100, "{} samples in 2 s at 10 ms", samples.len());
    assert!(samples.iter().all(|s| s.watts > 10.0 && s.watts < 1000.0), "{samples:?}");
    let mean_w = samples.iter().map(|s| s.watts).sum::<f64>() / samples.len() as f64;
    if let (Some(a), Some(b)) = (e0, e1) {
        // The counter (mJ) and the power readings (mW) must tell the same idle power.
        let counter_w = (b - a) as f64 / 1000.0 / (t1 - t0);
        assert!(counter_w > 0.5 * mean_w && counter_w < 2.0 * mean_w, "counter {counter_w} W, samples {mean_w} W");
        // How often the counter moves (recorded in every profile): print it, and it must move.
        let period = attnjoule::energy::counter_period(&src, 1.0, 1e-3).unwrap();
        println!("energy counter period: {period:?} s");
        assert!(period.is_some_and(|p| p < 0.5), "{period:?}");
    }
    println!("{info:?} state {:?}", src.state().unwrap());
}

#[test]
fn peer_script_real_output_lines_up_with_our_sweep() {
    // Written by the peer script itself (torch 2.15, `--cpu` dry run; command in tests/data/README.md):
    // the structures measure() really returns, failures included.
    let text = include_str!("data/peers-cpu-dryrun.json");
    let peers = Profile::from_json(text).unwrap();
    assert_eq!(peers.points.len(), 12);
    let ok: Vec<&Point> = peers.points.iter().filter(|p| matches!(p.status, PointStatus::Ok)).collect();
    assert_eq!(ok.len(), 6);
    assert!(ok.iter().all(|p| p.seconds.is_some() && p.joules.is_none() && p.energy_method == EnergyMethod::None));
    assert!(peers
        .points
        .iter()
        .any(|p| matches!(&p.status, PointStatus::Failed { error } if error.contains("window"))));
    // The same flags given to `attnjoule sweep` produce the same configuration keys, so that
    // `compare` pairs every measured peer point with one of ours.
    let spec = SweepSpec {
        variants: vec![Variant::Flash, Variant::Decode],
        contexts: vec![256],
        masks: vec![MaskRecipe::Causal, MaskRecipe::Window { keys: 128 }],
        ..SweepSpec::default()
    };
    let config = |k: String| k.split('/').skip(2).collect::<Vec<_>>().join("/");
    let ours: std::collections::HashSet<String> =
        sw::enumerate(&spec).unwrap().iter().map(|p| config(p.key())).collect();
    for p in &peers.points {
        assert!(ours.contains(&config(sw::point_key(p))), "no attnjoule point for {}", sw::point_key(p));
    }
    // And the profile's work counts agree with the crate's for those problems.
    for p in &ok {
        let spec = sw::PointSpec {
            variant: Variant::Flash,
            phase: p.phase,
            mask: p.mask.clone(),
            shape: p.shape,
            serving: Default::default(),
        };
        assert_eq!(p.flops, attnjoule::work::useful_flops(&spec.problem().unwrap()), "{}", sw::point_key(p));
    }
}

#[test]
fn peer_profiles_of_schema_1_read_as_schema_2() {
    // The script's schema-1 output (masks as kind/size/detail objects) converts on read to what it
    // writes now: the same profile, point for point.
    let old = Profile::from_json(include_str!("data/peers-cpu-dryrun-v1.json")).unwrap();
    let new = Profile::from_json(include_str!("data/peers-cpu-dryrun.json")).unwrap();
    assert_eq!(old, new);
    assert_eq!(old.schema_version, SCHEMA_VERSION, "converted, it is a current profile");
    // Saved again, it is written in the current schema.
    let again: serde_json::Value = serde_json::from_str(&old.to_json()).unwrap();
    assert_eq!(again["points"][1]["mask"], "window:128");
    // Every v1 spelling the crate or the peer script wrote converts; anything else is refused
    // with what to do.
    let v1 = |mask: serde_json::Value, seq_q: usize| {
        let mut v: serde_json::Value = serde_json::from_str(include_str!("data/peers-cpu-dryrun-v1.json")).unwrap();
        v["points"] = serde_json::json!([v["points"][0].clone()]);
        v["points"][0]["mask"] = mask;
        v["points"][0]["shape"]["seq_q"] = seq_q.into();
        // A point of fewer queries than keys is a decode step (a prefill is square).
        if seq_q != v["points"][0]["shape"]["seq_k"].as_u64().unwrap() as usize {
            v["points"][0]["phase"] = "decode".into();
        }
        Profile::from_json(&v.to_string()).map(|p| p.points[0].mask.to_string()).map_err(|e| e.to_string())
    };
    use serde_json::json;
    for (mask, seq_q, want) in [
        (json!({"kind": "none", "size": null, "detail": null}), 256, "none"),
        (json!({"kind": "window", "size": 4096}), 1, "window:4096"),
        (
            json!({"kind": "block_sparse", "size": 128, "detail": "longformer local=2 global=1"}),
            256,
            "longformer:128:2:1",
        ),
        (
            json!({"kind": "block_sparse", "size": 64, "detail": "bigbird-decode local=3 global=2 random=3 seed=0"}),
            1,
            "bigbird:64:2:2:3:0",
        ),
    ] {
        assert_eq!(v1(mask.clone(), seq_q).as_deref(), Ok(want), "{mask}");
    }
    for (mask, seq_q) in [
        (json!({"kind": "block_sparse", "size": 64, "detail": null}), 256),
        (json!({"kind": "block_sparse", "size": 64, "detail": "bigbird-decode local=3 global=2 random=3 seed=0"}), 4),
        (json!({"kind": "block_sparse", "size": 64, "detail": "bigbird-decode local=0 global=2 random=3 seed=0"}), 1),
        (json!({"kind": "block_sparse", "size": 64, "detail": "longformer local=1"}), 256),
        (json!({"kind": "window", "size": null}), 256),
        (json!({"kind": "sparse"}), 256),
    ] {
        let e = v1(mask.clone(), seq_q).unwrap_err();
        assert!(e.contains("point 0: schema-1 mask") && e.contains("schema_version to 2") && !e.contains('\n'), "{e}");
    }
}

#[test]
fn cli_mask_rows_are_the_masks_rows_and_bad_input_is_one_line() {
    // What the peer script's --check reads: every row's visible key runs.
    let out = bin()
        .args(["mask", "--mask", "longformer:100:1:1", "--seq", "130", "--seq-k", "300", "--json", "--rows"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mask = attnjoule::Mask::BlockSparse(attnjoule::BlockLayout::longformer(130, 300, 100, 1, 1));
    let rows: Vec<Vec<(usize, usize)>> = serde_json::from_value(v["rows"].clone()).unwrap();
    assert_eq!(rows.len(), 130);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(*r, mask.row_runs(i, 130, 300), "row {i}");
    }
    assert_eq!(v["visible_pairs"].as_u64(), Some(mask.visible_pairs(130, 300)));
    assert!(
        v["flash_error"].as_str().is_some_and(|e| e.contains("multiple of")),
        "100-token blocks are not whole tiles: {v}"
    );
    for args in
        [&["mask", "--mask", "window:0"][..], &["mask", "--seq", "0"], &["mask", "--seq", "70000", "--json", "--rows"]]
    {
        let out = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.trim_end().lines().count() == 1, "{args:?}: {err}");
    }
}

/// A GPU whose context a kernel fault poisons (every later call fails) until the worker holding
/// it is dropped; `restarts` limits how many fresh workers the factory can make.
fn faulting_factory(fault_ctx: usize, restarts: usize) -> (WorkerFactory, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Faulty {
        sim: SimWorker,
        fault_ctx: usize,
        poisoned: bool,
    }
    impl Worker for Faulty {
        fn kind(&self) -> ProfileKind {
            ProfileKind::Measured
        }
        fn info(&self) -> GpuInfo {
            self.sim.info()
        }
        fn idle_watts(&self) -> Option<f64> {
            Some(60.0)
        }
        fn point(&mut self, spec: &PointSpec, seed: u64) -> Point {
            if (spec.variant, spec.phase, spec.shape.seq_k) == (Variant::Dense, Phase::Prefill, self.fault_ctx)
                && !self.poisoned
            {
                self.poisoned = true;
                return backend::failed(spec, "CUDA_ERROR_ILLEGAL_ADDRESS");
            }
            if self.poisoned {
                return backend::failed(spec, "CUDA_ERROR_ILLEGAL_ADDRESS (sticky)");
            }
            self.sim.point(spec, seed)
        }
        fn gemm(&mut self, m: usize, n: usize, k: usize) -> attnjoule::Result<GemmPoint> {
            self.sim.gemm(m, n, k)
        }
        fn healthy(&mut self) -> bool {
            !self.poisoned
        }
    }
    let made = Arc::new(AtomicUsize::new(0));
    let count = made.clone();
    let f: WorkerFactory = Arc::new(move |_, cfg: &RunConfig| {
        if count.fetch_add(1, Ordering::SeqCst) > restarts {
            return Err(attnjoule::Error::Cuda("cuDevicePrimaryCtxRetain: CUDA_ERROR_UNKNOWN".into()));
        }
        let sim = SimWorker { mem: 80 << 30, proto: cfg.protocol.clone(), counter_period: None };
        Ok(Box::new(Faulty { sim, fault_ctx, poisoned: false }) as Box<dyn Worker>)
    });
    (f, made)
}

#[test]
fn a_kernel_fault_fails_one_point_and_the_worker_restarts() {
    use std::sync::atomic::Ordering;
    let dir = tempdir("fault");
    let cfg = sim_config(&dir);
    let (factory, made) = faulting_factory(4096, 1);
    let mut lines = Vec::new();
    let out = backend::run_with(&cfg, factory, &mut |l| lines.push(l.to_string())).unwrap();
    let failed: Vec<String> = out
        .profile
        .points
        .iter()
        .filter(|p| matches!(p.status, PointStatus::Failed { .. }))
        .map(sw::point_key)
        .collect();
    assert_eq!(failed, vec!["attnjoule/dense/prefill/causal/b1q4096k4096h8kv1d128"], "only the faulting point");
    assert_eq!(out.profile.points.len(), 12);
    assert_eq!(made.load(Ordering::SeqCst), 2, "one restart");
    assert!(out.warnings.iter().any(|w| w.contains("worker restarted")), "{:?}", out.warnings);
    assert!(lines.iter().any(|l| l.contains("warning") && l.contains("restarted")), "{lines:?}");

    // No restart possible: the sweep stops early, says so, and --resume finishes it.
    let dir = tempdir("fault-stop");
    let cfg = sim_config(&dir);
    let (factory, _) = faulting_factory(4096, 0);
    let out = backend::run_with(&cfg, factory, &mut |_| {}).unwrap();
    let n = out.profile.points.len();
    assert!(n < 12, "stopped after the fault: {n} points");
    assert!(out.warnings.iter().any(|w| w.contains("not restartable")), "{:?}", out.warnings);
    assert!(out.warnings.iter().any(|w| w.contains(&format!("{} points not run", 12 - n))), "{:?}", out.warnings);
    let cfg2 = RunConfig { resume: true, ..cfg };
    let out2 = backend::run_with(&cfg2, sim_factory(80 << 30), &mut |_| {}).unwrap();
    assert_eq!(out2.profile.points.len(), 12);
}

#[test]
fn a_coarse_energy_counter_is_warned_about() {
    let dir = tempdir("coarse");
    let cfg = sim_config(&dir);
    let f: WorkerFactory = Arc::new(|_, cfg: &RunConfig| {
        Ok(Box::new(SimWorker { mem: 80 << 30, proto: cfg.protocol.clone(), counter_period: Some(0.1) })
            as Box<dyn Worker>)
    });
    let out = backend::run_with(&cfg, f, &mut |_| {}).unwrap();
    // min_seconds 0.05 against a 100 ms counter: off by up to 200%.
    assert!(
        out.warnings.iter().any(|w| w.contains("moves every 100.0 ms") && w.contains("200.0%")),
        "{:?}",
        out.warnings
    );
    assert_eq!(out.profile.gpu.energy_counter_period_s, Some(0.1), "recorded in the profile");
}

#[test]
fn peer_script_work_counts_equal_the_crates() {
    // FLOPs and minimum bytes the peer script computes (closed forms, no torch) for prefill and
    // decode shapes of every mask it offers, against `work` on the crate's own masks.
    let cases: Vec<(&str, usize, usize)> = vec![
        ("none", 300, 300),
        ("causal", 1, 1000),
        ("causal", 16, 333),
        ("window:100", 300, 300),
        ("window:100", 4, 1000),
        ("longformer:128:1:1", 2048, 2048),
        ("longformer:64:0:2", 300, 300),
        ("longformer:64:2:0", 7, 1000),
        ("longformer:128:1:1", 1, 5000),
        ("longformer:64:3:0", 1000, 1000),
    ];
    let list: Vec<String> = cases.iter().map(|(m, q, k)| format!("({m:?}, {q}, {k})")).collect();
    let code = format!(
        r#"
print(json.dumps([t.work(t.parse_mask(m), 1, q, k, 8, 1, 128) for m, q, k in [{}]]))
"#,
        list.join(", ")
    );
    let Some(out) = peer_python(&code) else { return };
    let got: Vec<(f64, f64)> = serde_json::from_slice(&out).unwrap();
    for ((m, q, k), (flops, bytes)) in cases.iter().zip(got) {
        let shape = if q == k {
            attnjoule::Shape::prefill(1, *q, 8, 1, 128)
        } else {
            attnjoule::Shape::decode(1, *q, *k, 8, 1, 128)
        };
        let p = attnjoule::Problem::new(shape, m.parse::<MaskRecipe>().unwrap().mask(*q, *k).unwrap());
        assert_eq!(flops, attnjoule::work::useful_flops(&p), "{m} {q}x{k} flops");
        let want = if q == k { attnjoule::work::flash(&p, 64, 64) } else { attnjoule::work::decode(&p, 1) };
        assert_eq!(bytes, want.min_bytes, "{m} {q}x{k} bytes");
    }
}

/// Runs the binary; asserts it fails with one line on stderr, no panic, naming `needle`.
fn fails_in_one_line(args: &[&str], needle: &str) {
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_attnjoule"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The sweep prints its seed before it starts; the error is the line after it.
    let err_lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("seed ")).collect();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(err_lines.len(), 1, "{args:?}: {err}");
    assert!(err_lines[0].starts_with("error: ") && err_lines[0].contains(needle), "{args:?}: {err}");
}

#[test]
fn cli_hostile_sizes_fail_in_one_line() {
    // Overflowing products are caught, not wrapped into a small (or zero) grid.
    fails_in_one_line(&["emu", "--batch", "4611686018427387904", "--seq", "64"], "batch*heads");
    fails_in_one_line(
        &["emu", "--heads", "1", "--kv-heads", "1", "--seq", "2147483647", "--batch", "2147483647"],
        "Q of",
    );
    // Absurd emulator sizes are refused up front with the GiB they need (was: abort on a 64 GiB
    // allocation, or hours of planning).
    fails_in_one_line(&["emu", "--seq", "65536", "--variant", "dense"], "GiB of memory, more than --max-gib");
    fails_in_one_line(&["emu", "--seq", "64", "--threads", "0"], "at least 1 thread");
    fails_in_one_line(&["emu", "--seq", "2000000000", "--variant", "flash"], "GiB of memory");
    fails_in_one_line(
        &["emu", "--variant", "decode", "--seq", "1", "--seq-k", "256", "--splits", "4294967296"],
        "splits",
    );
    // Sequences beyond the kernels' range (was: a panic in the mask's i64 arithmetic).
    fails_in_one_line(&["mask", "--seq", "18446744073709551615"], "32-bit index range");
    fails_in_one_line(&["mask", "--seq", "1", "--seq-k", "18446744073709551615"], "32-bit index range");
    fails_in_one_line(&["mask", "--seq", "2147483647"], "at most");
    // Longformer layouts of too many blocks (was: minutes of building a 10^12-block layout).
    fails_in_one_line(&["mask", "--mask", "longformer:1:1:1", "--seq", "1000000"], "use a larger block");
    fails_in_one_line(
        &["sweep", "--backend", "emu", "--mask", "longformer:1:1:1", "--ctx", "1048576", "--dry-run"],
        "blocks",
    );
    // Huge context bounds (was: an endless loop doubling past usize::MAX).
    fails_in_one_line(&["sweep", "--ctx-min", "18446744073709551615", "--dry-run"], "no context sizes");
    fails_in_one_line(&["sweep", "--backend", "emu", "--emu-max-mib", "18446744073709551615"], "--emu-max-mib");
    fails_in_one_line(&["sweep", "--backend", "emu", "--min-seconds", "inf"], "--min-seconds");
    // Contexts beyond the kernels' 32-bit range: refused before anything runs, dry run included.
    fails_in_one_line(
        &["sweep", "--ctx-min", "4611686018427387904", "--ctx-max", "18446744073709551615", "--dry-run"],
        "32-bit",
    );
    // A plane of 16M x 16M keys maps in seconds (was: tiles counted one by one, quadratic).
    let t = std::time::Instant::now();
    let out = bin().args(["mask", "--mask", "none", "--seq", "16777216", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"full\":34359738368"));
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
}

#[test]
fn cli_bad_files_fail_in_one_line() {
    let dir = tempdir("cli-files");
    let d = |f: &str| dir.join(f).display().to_string();
    std::fs::write(dir.join("empty.json"), "").unwrap();
    // Missing and corrupt inputs: the path and what is wrong, once (was: the OS error twice, a
    // missing log reported as "no header line", "format error" twice).
    fails_in_one_line(&["merge", &d("missing.jsonl")], "No such file");
    fails_in_one_line(&["compare", &d("missing.json"), &d("empty.json")], "No such file");
    let out = bin().args(["compare", &d("empty.json"), &d("empty.json")]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not valid JSON") && err.matches("format error").count() == 1, "{err}");
    let out = bin().args(["estimate", "--profile", &d("missing.json"), "--no-plot"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.matches("No such file").count() == 1, "{err}");
    // Outputs that are a folder or a file where the other is needed.
    let p = profile("NVIDIA H100 80GB HBM3", "580.1", vec![sample_point("flash", 1024, PointStatus::Ok)]);
    p.save(&dir.join("a.json")).unwrap();
    fails_in_one_line(&["merge", &d("a.json"), "-o", &d("")], "is a folder");
    fails_in_one_line(&["compare", &d("a.json"), &d("a.json"), "--csv", &d("")], "is a folder");
    fails_in_one_line(&["sweep", "--backend", "emu", "--out", &d("a.json")], "is a file");
    // Emulated profiles have no times to compare (was: "no configuration was measured in both").
    let mut emu = p.clone();
    emu.kind = ProfileKind::Emulated;
    emu.save(&dir.join("emu.json")).unwrap();
    fails_in_one_line(&["compare", &d("emu.json"), &d("a.json")], "emulated profile");
    // A report that is not ncu's CSV: named with its path (was: no path).
    std::fs::write(dir.join("g.csv"), "garbage\n").unwrap();
    fails_in_one_line(
        &["import-ncu", &d("g.csv"), "--profile", &d("a.json"), "--point", "flash"],
        "g.csv: format error: not an ncu CSV",
    );
}

#[test]
fn cli_resume_refuses_a_log_of_another_shape() {
    let dir = tempdir("cli-resume");
    let out_dir = dir.join("sweep").display().to_string();
    let args = |heads: &'static str, resume: bool| {
        let mut a = vec!["sweep", "--backend", "emu", "--variants", "flash", "--phases", "prefill", "--ctx", "64"];
        a.extend(["--kv-heads", "1", "--head-dim", "64", "--seed", "1", "--heads", heads, "--out", out_dir.as_str()]);
        if resume {
            a.push("--resume");
        }
        a
    };
    let out = bin().args(args("1", false)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Was: resumed, mixing heads-2 points into the heads-1 profile.
    fails_in_one_line(&args("2", true), "heads 1 (now 2)");
    let p = Profile::load(&dir.join("sweep").join("profile.json")).unwrap();
    assert!(p.points.iter().all(|x| x.shape.heads == 1));
}

/// Two layouts that differ only in one parameter (`local`), and two that differ only in the seed:
/// distinct points under every command that joins points by key.
fn one_parameter_apart() -> Vec<MaskRecipe> {
    ["longformer:128:1:1", "longformer:128:2:1", "bigbird:128:1:1:1:1", "bigbird:128:1:1:1:2"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect()
}

#[test]
fn resume_merge_and_compare_keep_masks_one_parameter_apart() {
    let dir = tempdir("mask-params");
    let cfg = RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Dense],
            phases: vec![Phase::Prefill],
            contexts: vec![1024, 2048],
            masks: one_parameter_apart(),
            ..Default::default()
        },
        ..sim_config(&dir)
    };
    let n = 4 * 2;
    let keys: std::collections::HashSet<String> = sw::enumerate(&cfg.spec).unwrap().iter().map(|p| p.key()).collect();
    assert_eq!(keys.len(), n, "every parameter is part of the key: {keys:?}");
    assert!(keys.contains("attnjoule/dense/prefill/longformer:128:2:1/b1q2048k2048h8kv1d128"), "{keys:?}");

    // --resume: a log cut after the first mask's points measures exactly the others.
    let out = backend::run_with(&cfg, sim_factory(80 << 30), &mut |_| {}).unwrap();
    assert_eq!(out.profile.points.len(), n);
    let log = dir.join("points.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let keep: Vec<&str> = text.lines().take(1 + 2).collect();
    std::fs::write(&log, keep.join("\n") + "\n").unwrap();
    let mut lines = Vec::new();
    let cfg2 = RunConfig { resume: true, ..cfg.clone() };
    let out2 = backend::run_with(&cfg2, sim_factory(80 << 30), &mut |l| lines.push(l.to_string())).unwrap();
    assert!(lines.iter().any(|l| l.contains("2 points done, 6 to go")), "{lines:?}");
    let masks = |p: &Profile| {
        let mut m: Vec<(String, usize)> = p.points.iter().map(|x| (x.mask.to_string(), x.shape.seq_k)).collect();
        m.sort();
        m
    };
    let want: Vec<(String, usize)> = {
        let mut w: Vec<(String, usize)> =
            one_parameter_apart().iter().flat_map(|m| [1024, 2048].map(|c| (m.to_string(), c))).collect();
        w.sort();
        w
    };
    assert_eq!(masks(&out2.profile), want, "each mask measured once, none taken for another");

    // merge: shards, each holding some of the masks, join without losing a point.
    let mut inputs = Vec::new();
    for i in 0..3 {
        let d = tempdir(&format!("mask-params-shard{i}"));
        let c = RunConfig { shard: Some(Shard { index: i, count: 3 }), ..RunConfig { out: Some(d), ..cfg.clone() } };
        let o = backend::run_with(&c, sim_factory(80 << 30), &mut |_| {}).unwrap();
        inputs.push((o.log.display().to_string(), merge::load_any(&o.log).unwrap().0));
    }
    let m = merge::merge(inputs).unwrap();
    assert_eq!(masks(&m), want, "no point dropped as a duplicate");
    assert!(!m.notes.iter().any(|n| n.contains("duplicate")), "{:?}", m.notes);

    // compare: rows pair equal recipes only, and say which.
    let mut other = out2.profile.clone();
    other.points.modify_all(|p| p.seconds = p.seconds.map(|s| Stat::exact(s.median * 2.0)));
    let rows = sw::compare::compare(&out2.profile, &other, None, None);
    assert_eq!(rows.len(), n);
    let mut row_masks: Vec<(String, usize)> = rows.iter().map(|r| (r.mask.clone(), r.context)).collect();
    row_masks.sort();
    assert_eq!(row_masks, want);
    assert!(rows.iter().all(|r| close(r.time_ratio, 0.5, 1e-12)), "each row pairs a point with its own copy");
}

#[test]
fn cli_mask_takes_every_recipe() {
    let dir = tempdir("cli-recipes");
    let layout = dir.join("layout.json");
    // 130 queries x 300 keys in 64-token blocks: 3 block rows, 5 block columns.
    std::fs::write(&layout, r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1, 3, 4], "col_idx": [4, 0, 2, 3]}"#)
        .unwrap();
    let csr = format!("csr:{}", layout.display());
    for (spelling, mask) in [
        ("bigbird:64:1:1:2:7", attnjoule::Mask::BlockSparse(attnjoule::BlockLayout::bigbird(130, 300, 64, 1, 1, 2, 7))),
        ("strided:64:1:2", attnjoule::Mask::BlockSparse(attnjoule::BlockLayout::strided(130, 300, 64, 1, 2))),
        (
            csr.as_str(),
            attnjoule::Mask::BlockSparse(
                attnjoule::BlockLayout::from_csr(130, 300, 64, 64, vec![0, 1, 3, 4], vec![4, 0, 2, 3]).unwrap(),
            ),
        ),
    ] {
        let out =
            bin().args(["mask", "--mask", spelling, "--seq", "130", "--seq-k", "300", "--json", "--rows"]).output();
        let out = out.unwrap();
        assert!(out.status.success(), "{spelling}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows: Vec<Vec<(usize, usize)>> = serde_json::from_value(v["rows"].clone()).unwrap();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(*r, mask.row_runs(i, 130, 300), "{spelling} row {i}");
        }
        // The summary names the recipe as the profiles record it (a layout file with its hash).
        let named = v["mask"].as_str().unwrap();
        assert!(named.starts_with(spelling) && named.parse::<MaskRecipe>().is_ok(), "{named}");
    }
    // A layout file of another grid, a missing or malformed file: one line naming the file.
    fails_in_one_line(&["mask", "--mask", &csr, "--seq", "256", "--seq-k", "300"], "needs 4");
    for (file, text) in [("missing.json", None), ("bad.json", Some("{\"block_q\": 64}"))] {
        let path = dir.join(file);
        if let Some(t) = text {
            std::fs::write(&path, t).unwrap();
        }
        let out = bin().args(["mask", "--mask", &format!("csr:{}", path.display())]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.trim_end().lines().count() == 1, "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    // The sweep keys a layout file's points by its content: two files of the same name differ.
    let dry = |text: &str| {
        std::fs::write(&layout, text).unwrap();
        let out = bin()
            .args(["sweep", "--backend", "emu", "--variants", "dense", "--phases", "prefill", "--ctx", "128"])
            .args(["--mask", &csr, "--dry-run"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().next().unwrap().to_string()
    };
    let a = dry(r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1, 2], "col_idx": [0, 1]}"#);
    let b = dry(r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1, 3], "col_idx": [0, 0, 1]}"#);
    assert!(a.contains("csr:") && a.contains('#') && a != b, "{a} / {b}");
}

#[test]
fn a_log_of_schema_1_reads_converted_and_resumes() {
    // A log as schema 1 wrote it: a header without `schema_version`, masks as objects.
    let dir = tempdir("v1-log");
    let path = dir.join("points.jsonl");
    let mut w = jsonl::Writer::open(&path, 0).unwrap();
    w.append(&Line::Header(jsonl::Header {
        kind: ProfileKind::Measured,
        gpu: GpuInfo { name: "g".into(), ..Default::default() },
        created: "2026-11-23".into(),
        tool: None,
        idle_watts: None,
        config: serde_json::Value::Null,
        schema_version: SCHEMA_VERSION,
    }))
    .unwrap();
    let mut p = sample_point("flash", 1024, PointStatus::Ok);
    p.mask = "longformer:128:2:1".parse().unwrap();
    w.append(&Line::Point(Box::new(p.clone()))).unwrap();
    drop(w);
    let text = std::fs::read_to_string(&path).unwrap();
    let v1 = text.replace(",\"schema_version\":2", "").replace(
        "\"mask\":\"longformer:128:2:1\"",
        "\"mask\":{\"kind\":\"block_sparse\",\"size\":128,\"detail\":\"longformer local=2 global=1\"}",
    );
    assert!(!v1.contains("schema_version") && v1.contains("block_sparse"), "{v1}");
    std::fs::write(&path, &v1).unwrap();
    let log = jsonl::read(&path).unwrap();
    assert_eq!(log.header.as_ref().unwrap().schema_version, 1);
    assert_eq!(log.points.to_vec(), vec![p.clone()], "the mask converted to its recipe");
    // Resumed by this build, the log mixes both forms, and still reads.
    let mut w = jsonl::Writer::open(&path, log.valid_len).unwrap();
    let q = sample_point("flash", 2048, PointStatus::Ok);
    w.append(&Line::Point(Box::new(q.clone()))).unwrap();
    let (prof, _) = merge::load_any(&path).unwrap();
    assert_eq!((prof.schema_version, prof.points.into_vec()), (SCHEMA_VERSION, vec![p, q]));
    // A log from a newer schema is refused, not misread.
    std::fs::write(&path, text.replace("\"schema_version\":2", "\"schema_version\":99")).unwrap();
    let e = jsonl::read(&path).unwrap_err().to_string();
    assert!(e.contains("schema 99") && e.contains("newer attnjoule"), "{e}");
}

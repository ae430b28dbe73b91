//! Device memory comes back on every command path. The paths: one call through `ops`, the call
//! `attnjoule ncu` profiles, the emulator worker's and the measuring worker's points (ok,
//! infeasible, refused, and every injected failure), the measuring worker's rotated input sets and
//! GEMM calibration sets, and whole sweeps through the worker pool (each point checked as it
//! finishes, a restarted worker included). The check is the emulator's own count of live
//! allocations, and each path is also run with a planted leak (one allocation never freed), which
//! the same check must catch.

use attnjoule::device::testing::{Call, Faulty};
use attnjoule::device::{DevBuf, Device};
use attnjoule::emu::EmuDevice;
use attnjoule::energy::SimGpu;
use attnjoule::mask::MaskRecipe;
use attnjoule::ops::{Attention, Options};
use attnjoule::profile::{GemmPoint, GpuInfo, Phase, Point, PointStatus, ProfileKind};
use attnjoule::sweep::backend::{self, BackendKind, RunConfig, Worker, WorkerFactory};
use attnjoule::sweep::protocol::ProtocolConfig;
use attnjoule::sweep::worker::emu::EmuWorker;
use attnjoule::sweep::worker::gpu::{Gpu, GpuWorker};
use attnjoule::sweep::{ncu, PointSpec, SweepSpec};
use attnjoule::work::Variant;
use attnjoule::{Mask, Problem, Shape};
use std::sync::{Arc, Mutex};

/// Live allocations of `emu` gained while `f` ran (negative: freed some it did not make).
fn gained<R>(emu: &EmuDevice, f: impl FnOnce() -> R) -> (R, i64) {
    let before = emu.live_allocations().0 as i64;
    let r = f();
    (r, emu.live_allocations().0 as i64 - before)
}

/// 1..=n, or a spread of it when n is large (first, last and middle calls).
fn some_of(n: usize) -> Vec<usize> {
    if n <= 12 {
        return (1..=n).collect();
    }
    let mut v = vec![1, 2, 3, n / 3, n / 2, 2 * n / 3, n - 2, n - 1, n];
    v.dedup();
    v
}

/// Runs `path` on the emulator wrapped in [`Faulty`]: clean, with each call of each kind failing
/// in turn, and with each allocation leaked in turn. Clean and failing runs must give back every
/// allocation; a run with a planted leak must be caught holding exactly that one. Returns the
/// number of leaks planted (they stay allocated).
fn check_path(name: &str, emu: &EmuDevice, mut path: impl FnMut(&dyn Device) -> bool) -> usize {
    let clean = Faulty::new(emu);
    let (ok, d) = gained(emu, || path(&clean));
    assert!(ok, "{name}: the clean run must succeed");
    assert_eq!(d, 0, "{name}: clean run leaked {d} allocations");
    let allocs = clean.calls(Call::Alloc);
    assert!(allocs > 0, "{name} allocates");
    let mut runs = 1;
    let mut planted = 0;
    for call in Call::ALL {
        for n in some_of(clean.calls(call)) {
            let dev = Faulty::failing(emu, call, n);
            let (_, d) = gained(emu, || path(&dev));
            assert_eq!(d, 0, "{name}: {call:?} {n} of {} failed: {d} allocations leaked", clean.calls(call));
            runs += 1;
        }
    }
    for n in some_of(allocs) {
        let dev = Faulty::leaking(emu, n);
        let (_, d) = gained(emu, || path(&dev));
        assert!(dev.leaked(), "{name}: allocation {n} of {allocs} was made");
        assert_eq!(d, 1, "{name}: the leak planted at allocation {n} of {allocs} is caught");
        runs += 1;
        planted += 1;
    }
    println!("{name}: {runs} runs, {allocs} allocations, {planted} leaks planted and caught");
    planted
}

fn inputs(s: &Shape, seed: u64) -> [Vec<half::bf16>; 3] {
    let r = attnjoule::reference::random_bf16;
    [r(s.q_elems(), seed), r(s.kv_elems(), seed + 1), r(s.kv_elems(), seed + 2)]
}

fn spec(variant: Variant, phase: Phase, mask: MaskRecipe, shape: Shape) -> PointSpec {
    PointSpec { variant, phase, mask, shape, serving: Default::default() }
}

#[test]
fn ops_and_ncu_calls_give_back_their_memory() {
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let emu = EmuDevice::new();
    let longformer = |sq, sk| Mask::BlockSparse(attnjoule::BlockLayout::longformer(sq, sk, 64, 1, 1));
    let calls = [
        (Variant::Dense, Problem::new(Shape::prefill(1, 96, 2, 1, 64), Mask::Causal), None),
        (Variant::Flash, Problem::new(Shape::prefill(1, 128, 2, 1, 64), longformer(128, 128)), None),
        (Variant::Decode, Problem::new(Shape::decode(1, 2, 512, 4, 2, 64), longformer(2, 512)), Some(3)),
    ];
    let mut planted = 0;
    for (v, p, splits) in calls {
        let att = Attention::new(v, &p, &Options { splits, ..Default::default() }).unwrap();
        let [q, k, vv] = inputs(&p.shape, seed);
        planted += check_path(&format!("ops {}", v.name()), &emu, |dev| att.run_once(dev, &q, &k, &vv).is_ok());
    }
    let s = spec(Variant::Flash, Phase::Prefill, MaskRecipe::Causal, Shape::prefill(1, 128, 2, 1, 64));
    planted += check_path("ncu", &emu, |dev| ncu::profile_call(dev, &s, 2, seed).is_ok());
    // A buffer its owner forgets instead of dropping is the same leak, seen the same way.
    let (_, d) = gained(&emu, || std::mem::forget(DevBuf::new(&emu, 64).unwrap()));
    assert_eq!(d, 1, "a forgotten DevBuf is caught");
    planted += 1;
    assert_eq!(emu.live_allocations().0, planted, "exactly the planted leaks are left");
}

/// A GPU for the measuring worker made of the emulator: `free` bytes of memory, and a GEMM that
/// writes C (cuBLAS is not there to run it).
struct EmuGpu<D>(D, usize);

impl<D: Device> Gpu for EmuGpu<D> {
    fn device(&self) -> &dyn Device {
        &self.0
    }
    fn ordinal(&self) -> usize {
        0
    }
    fn free_memory(&self) -> attnjoule::Result<usize> {
        Ok(self.1)
    }
    fn reset_events(&self) -> attnjoule::Result<()> {
        Ok(())
    }
    fn gemm_bf16(&self, _dims: (usize, usize, usize), [_, _, c]: [&DevBuf; 3]) -> attnjoule::Result<()> {
        c.fill(0)
    }
}

/// 3 MiB: room for dozens of small input sets, too little for dense prefill at 640 tokens.
const FREE: usize = 3 << 20;

fn run_config(dir: &std::path::Path, backend: BackendKind, seed: u64) -> RunConfig {
    RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Dense, Variant::Flash, Variant::Decode],
            phases: vec![Phase::Prefill, Phase::Decode],
            contexts: vec![128, 640],
            decode_tokens: vec![1],
            masks: vec![MaskRecipe::Causal, MaskRecipe::Longformer { block: 64, local: 1, global: 1 }],
            batch: 1,
            heads: 2,
            kv_heads: 1,
            head_dim: 64,
            ..Default::default()
        },
        protocol: ProtocolConfig {
            warmup_calls: 1,
            min_seconds: 0.005,
            reps: 2,
            gap_min_s: 0.0,
            gap_max_s: 0.0,
            ..Default::default()
        },
        backend,
        out: Some(dir.to_path_buf()),
        gemm: vec![(64, 64, 64)],
        idle_seconds: 0.0,
        emu_max_bytes: FREE,
        seed,
        ..Default::default()
    }
}

fn gpu_worker<D: Device>(dev: D, cfg: &RunConfig) -> GpuWorker<EmuGpu<D>> {
    let info = GpuInfo { name: "emulated GPU".into(), ..Default::default() };
    GpuWorker::new(EmuGpu(dev, FREE), Box::new(SimGpu::new(true, 0.01)), info, cfg).unwrap()
}

#[test]
fn worker_points_sets_and_gemm_give_back_their_memory() {
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let emu = EmuDevice::new();
    let cfg = run_config(std::path::Path::new("unused"), BackendKind::Cuda, seed);
    let flash = spec(Variant::Flash, Phase::Prefill, MaskRecipe::Causal, Shape::prefill(1, 128, 2, 1, 64));
    let sparse_decode = spec(
        Variant::Decode,
        Phase::Decode,
        MaskRecipe::Longformer { block: 64, local: 1, global: 1 },
        Shape::decode(1, 1, 640, 2, 1, 64),
    );
    let too_big = spec(Variant::Dense, Phase::Prefill, MaskRecipe::Causal, Shape::prefill(1, 640, 2, 1, 64));
    let refused = spec(Variant::Decode, Phase::Decode, MaskRecipe::Causal, Shape::decode(1, 17, 640, 2, 1, 64));
    // The measuring worker: a point over rotated input sets (many sets fit in FREE).
    let mut sets = 0;
    let mut planted = check_path("gpu worker point", &emu, |dev| {
        let p = gpu_worker(dev, &cfg).point(&flash, seed);
        sets = sets.max(p.detail.as_ref().and_then(|d| d.buffer_sets).unwrap_or(0));
        p.status == PointStatus::Ok
    });
    assert!(sets >= 8, "{sets} rotated input sets");
    planted += check_path("gpu worker sparse decode", &emu, |dev| {
        gpu_worker(dev, &cfg).point(&sparse_decode, seed).status == PointStatus::Ok
    });
    planted += check_path("gpu worker gemm", &emu, |dev| gpu_worker(dev, &cfg).gemm(64, 64, 64).is_ok());
    // Early returns allocate nothing, and give back nothing they did not take.
    for s in [&too_big, &refused] {
        let dev = Faulty::new(&emu);
        let (p, d) = gained(&emu, || gpu_worker(&dev, &cfg).point(s, seed));
        assert!(p.status != PointStatus::Ok && d == 0 && dev.calls(Call::Alloc) == 0, "{:?}", p.status);
    }

    // The emulator worker.
    planted += check_path("emu worker point", &emu, |dev| {
        EmuWorker::new(dev, FREE).point(&sparse_decode, seed).status == PointStatus::Ok
    });
    for s in [&too_big, &refused] {
        let (p, d) = gained(&emu, || EmuWorker::new(&emu, FREE).point(s, seed));
        assert!(p.status != PointStatus::Ok && d == 0, "{:?}", p.status);
    }
    assert_eq!(emu.live_allocations().0, planted, "exactly the planted leaks are left");
}

/// A worker that checks, after each point and GEMM point, that its emulator holds nothing.
struct Checked<W> {
    inner: W,
    emu: Arc<EmuDevice>,
    leaks: Arc<Mutex<Vec<String>>>,
}

impl<W: Worker> Checked<W> {
    fn check(&self, what: String) {
        let (n, bytes) = self.emu.live_allocations();
        if n > 0 {
            self.leaks.lock().unwrap().push(format!("{what}: {n} allocations ({bytes} bytes) live"));
        }
    }
}

impl<W: Worker> Worker for Checked<W> {
    fn kind(&self) -> ProfileKind {
        self.inner.kind()
    }
    fn info(&self) -> GpuInfo {
        self.inner.info()
    }
    fn idle_watts(&self) -> Option<f64> {
        self.inner.idle_watts()
    }
    fn point(&mut self, spec: &PointSpec, seed: u64) -> Point {
        let p = self.inner.point(spec, seed);
        self.check(format!("after {} ({:?})", spec.key(), p.status));
        p
    }
    fn gemm(&mut self, m: usize, n: usize, k: usize) -> attnjoule::Result<GemmPoint> {
        let g = self.inner.gemm(m, n, k);
        self.check(format!("after GEMM {m}x{n}x{k}"));
        g
    }
    fn healthy(&mut self) -> bool {
        self.inner.healthy()
    }
}

/// How the sweep tests wrap the emulator of each worker they make.
#[derive(Clone, Copy)]
enum Plant {
    Nothing,
    /// The first worker's n-th call of this kind fails; its point is recorded as failed and the
    /// worker, found healthy, goes on.
    Failure(Call, usize),
    /// The first worker never frees its n-th allocation.
    Leak(usize),
}

fn factory(emu: &Arc<EmuDevice>, leaks: &Arc<Mutex<Vec<String>>>, plant: Plant) -> WorkerFactory {
    let (emu, leaks) = (emu.clone(), leaks.clone());
    let made = Arc::new(Mutex::new(0usize));
    Arc::new(move |_, cfg: &RunConfig| {
        let first = {
            let mut m = made.lock().unwrap();
            *m += 1;
            *m == 1
        };
        let dev = match plant {
            Plant::Failure(call, n) if first => Faulty::failing(emu.clone(), call, n),
            Plant::Leak(n) if first => Faulty::leaking(emu.clone(), n),
            _ => Faulty::new(emu.clone()),
        };
        let (emu, leaks) = (emu.clone(), leaks.clone());
        Ok(match cfg.backend {
            BackendKind::Emu => Box::new(Checked { inner: EmuWorker::new(dev, cfg.emu_max_bytes), emu, leaks }),
            BackendKind::Cuda => Box::new(Checked { inner: gpu_worker(dev, cfg), emu, leaks }) as Box<dyn Worker>,
        })
    })
}

fn tempdir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "attnjoule-leaks-{name}-{}-{}",
        std::process::id(),
        attnjoule::reference::fresh_seed()
    ))
}

#[test]
fn sweeps_give_back_memory_after_every_point_and_a_planted_leak_is_caught() {
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let emu = Arc::new(EmuDevice::new());
    let leaks = Arc::new(Mutex::new(Vec::new()));
    for backend in [BackendKind::Cuda, BackendKind::Emu] {
        for plant in [Plant::Nothing, Plant::Failure(Call::Launch, 4), Plant::Failure(Call::Alloc, 30)] {
            let dir = tempdir("sweep");
            let cfg = run_config(&dir, backend, seed);
            let out = backend::run_with(&cfg, factory(&emu, &leaks, plant), &mut |_| {}).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            let st = |f: fn(&PointStatus) -> bool| out.profile.points.iter().filter(|p| f(&p.status)).count();
            let (ok, infeasible, failed) = (
                st(|s| *s == PointStatus::Ok),
                st(|s| matches!(s, PointStatus::Infeasible { .. })),
                st(|s| matches!(s, PointStatus::Failed { .. })),
            );
            println!(
                "{}: {ok} ok, {infeasible} infeasible, {failed} failed",
                if backend == BackendKind::Cuda { "gpu worker" } else { "emu worker" }
            );
            assert_eq!(out.profile.points.len(), 16);
            assert!(infeasible >= 2, "dense prefill at 640 does not fit");
            let want_failed = usize::from(!matches!(plant, Plant::Nothing));
            assert_eq!(failed, want_failed, "{:?}", out.profile.points.iter().map(|p| &p.status).collect::<Vec<_>>());
            if backend == BackendKind::Cuda {
                assert_eq!(out.profile.gemm.len(), 1, "the GEMM calibration ran");
            }
            assert!(leaks.lock().unwrap().is_empty(), "{:#?}", leaks.lock().unwrap());
            assert_eq!(emu.live_allocations().0, 0);
        }
    }

    // The same sweep with one allocation never freed: the point that made it is named.
    let dir = tempdir("planted");
    let cfg = run_config(&dir, BackendKind::Cuda, seed);
    backend::run_with(&cfg, factory(&emu, &leaks, Plant::Leak(7)), &mut |_| {}).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let found = leaks.lock().unwrap().clone();
    println!("{found:#?}");
    assert!(!found.is_empty() && found[0].contains("after attnjoule/"), "{found:?}");
    assert_eq!(emu.live_allocations().0, 1, "exactly the planted allocation");
}

//! Running a sweep on a backend: one worker per GPU (`--devices`), or the CPU emulator. Workers
//! pull points from a shared queue; the calling thread appends each result to the JSONL log as
//! it arrives and prints progress.

use super::jsonl::{self, Header, Line};
use super::protocol::{self, ProtocolConfig, Target};
use super::{infeasible, output, point_key, PointSpec, Shard, SweepSpec, GIB};
use crate::device::cuda::{Cublas, CudaDevice};
use crate::device::{DevBuf, Device, Timestamp};
use crate::energy::{self, EnergySource, NvmlSource};
use crate::error::{Error, Result};
use crate::ops::{Attention, Buffers, Options};
use crate::profile::{EnergyMethod, GemmPoint, GpuInfo, Point, PointDetail, PointStatus, Profile, ProfileKind};
use half::bf16;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Cuda,
    Emu,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub spec: SweepSpec,
    pub protocol: ProtocolConfig,
    pub backend: BackendKind,
    /// CUDA ordinals, one worker each.
    pub devices: Vec<usize>,
    pub shard: Option<Shard>,
    /// Output folder; default `profiles/<gpu>-<date>/`.
    pub out: Option<PathBuf>,
    pub resume: bool,
    /// On resume, measure again the points that failed before.
    pub retry_failed: bool,
    /// Idle window for the baseline (seconds).
    pub idle_seconds: f64,
    pub power_period_ms: u64,
    /// GEMM calibration sizes (m, n, k); empty for none. Run by shard 0 only.
    pub gemm: Vec<(usize, usize, usize)>,
    /// Device memory the emulator may use for one point.
    pub emu_max_bytes: usize,
    /// Input data seed.
    pub seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            spec: SweepSpec::default(),
            protocol: ProtocolConfig::default(),
            backend: BackendKind::Cuda,
            devices: vec![0],
            shard: None,
            out: None,
            resume: false,
            retry_failed: false,
            idle_seconds: 3.0,
            power_period_ms: 10,
            gemm: vec![(4096, 4096, 4096), (8192, 8192, 8192), (16384, 16384, 16384)],
            emu_max_bytes: 1 << 30,
            seed: 0,
        }
    }
}

/// What a finished sweep produced.
#[derive(Debug)]
pub struct Outcome {
    pub profile: Profile,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// The CPU emulator as a sweep backend (sanitizer and counters on).
pub fn emu_device() -> Result<Box<dyn Device>> {
    Ok(Box::new(crate::emu::EmuDevice::new()))
}

/// A worker: measures points on one device. Public so tests can drive the whole sweep (log,
/// resume, outputs) with a simulated GPU.
pub trait Worker {
    /// Measured (GPU) or Emulated.
    fn kind(&self) -> ProfileKind;
    fn info(&self) -> GpuInfo;
    fn idle_watts(&self) -> Option<f64>;
    fn point(&mut self, spec: &PointSpec, seed: u64) -> Point;
    fn gemm(&mut self, m: usize, n: usize, k: usize) -> Result<GemmPoint>;
    /// Asked after a failed point: can this worker still run the next one? A CUDA kernel fault
    /// (illegal address, launch failure, ...) is sticky: every later call in the context fails.
    /// An unhealthy worker is dropped (releasing the context resets it) and made anew, instead
    /// of recording every remaining point as failed with the same error.
    fn healthy(&mut self) -> bool {
        true
    }
}

enum Msg {
    Ready { kind: ProfileKind, info: GpuInfo, idle: Option<f64> },
    Fatal(Error),
    Point(Box<Point>, f64),
    Gemm(Result<GemmPoint>),
    Warning(String),
    Done,
}

pub fn blank_point(spec: &PointSpec, status: PointStatus) -> Point {
    // A mask that cannot be built (a layout file gone) has no work counts: zero, with the error
    // in the point's status.
    let work = spec.problem().map_or(crate::work::Work::default(), |p| {
        crate::ops::Attention::new(spec.variant, &p, &Options::default()).map(|a| a.work()).unwrap_or_else(|_| {
            match spec.variant {
                crate::work::Variant::Dense => crate::work::dense(&p),
                crate::work::Variant::Flash => crate::work::flash(&p, 128, 64),
                crate::work::Variant::Decode => crate::work::decode(&p, 1),
            }
        })
    });
    Point {
        variant: spec.variant.name().into(),
        implementation: "attnjoule".into(),
        phase: spec.phase,
        mask: spec.mask.clone(),
        shape: spec.shape,
        status,
        flops: work.flops,
        min_bytes: work.min_bytes,
        seconds: None,
        joules: None,
        joules_above_idle: None,
        watts: None,
        energy_method: EnergyMethod::None,
        throttled: false,
        calls: None,
        counters: None,
        ncu: Default::default(),
        note: None,
        detail: None,
    }
}

pub fn failed(spec: &PointSpec, e: impl std::fmt::Display) -> Point {
    blank_point(spec, PointStatus::Failed { error: e.to_string() })
}

/// Host input data: a random block of up to 16 Mi elements, repeated to fill a tensor (random
/// enough for the hardware's switching activity, and cheap at 1M tokens).
struct HostData {
    block: Vec<bf16>,
}

impl HostData {
    fn new(seed: u64) -> Self {
        HostData { block: crate::reference::random_bf16(1 << 24, seed) }
    }
    fn upload(&self, dev: &dyn Device, buf: &DevBuf, elems: usize) -> Result<()> {
        let mut off = 0;
        while off < elems {
            let n = (elems - off).min(self.block.len());
            dev.upload(buf, 2 * off, crate::device::bytemuck_like::as_bytes(&self.block[..n]))?;
            off += n;
        }
        Ok(())
    }
}

/// The rotated input sets of one call: set 0 owns everything; the others have their own Q, K, V,
/// O and LSE and share set 0's scratch and block layout.
fn alloc_sets(dev: &dyn Device, att: &Attention, sets: usize, data: &HostData) -> Result<Vec<Buffers>> {
    let s = att.problem.shape;
    let mut out: Vec<Buffers> = Vec::new();
    let res = (|| {
        for i in 0..sets {
            let b = if i == 0 {
                att.alloc(dev)?
            } else {
                // One at a time, so that a failed allocation frees this set's earlier ones (they
                // are not in `out` yet, and free_sets below would not see them).
                let mut own: Vec<DevBuf> = Vec::with_capacity(5);
                for bytes in [2 * s.q_elems(), 2 * s.kv_elems(), 2 * s.kv_elems(), 2 * s.q_elems(), 4 * s.lse_elems()] {
                    match dev.alloc(bytes) {
                        Ok(b) => own.push(b),
                        Err(e) => {
                            for b in own {
                                let _ = dev.free(b);
                            }
                            return Err(e);
                        }
                    }
                }
                let b0 = &out[0];
                Buffers {
                    q: own[0],
                    k: own[1],
                    v: own[2],
                    o: own[3],
                    lse: own[4],
                    scratch: b0.scratch,
                    scratch_lse: b0.scratch_lse,
                    row_ptr: b0.row_ptr,
                    col_idx: b0.col_idx,
                }
            };
            out.push(b);
            let b = out.last().expect("pushed");
            data.upload(dev, &b.q, s.q_elems())?;
            data.upload(dev, &b.k, s.kv_elems())?;
            data.upload(dev, &b.v, s.kv_elems())?;
            att.poison_outputs(dev, b)?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(out),
        Err(e) => {
            free_sets(dev, out);
            Err(e)
        }
    }
}

fn free_sets(dev: &dyn Device, sets: Vec<Buffers>) {
    for (i, b) in sets.into_iter().enumerate() {
        if i == 0 {
            let _ = b.free(dev);
        } else {
            for x in [b.q, b.k, b.v, b.o, b.lse] {
                let _ = dev.free(x);
            }
        }
    }
}

/// A target on a real device: `launch` enqueues one call on input set `i`; the clock, the
/// synchronization and the idle gaps are the device's.
struct DeviceTarget<'a, F: FnMut(usize) -> Result<()>> {
    dev: &'a dyn Device,
    sets: usize,
    launch: F,
}

impl<F: FnMut(usize) -> Result<()>> Target for DeviceTarget<'_, F> {
    fn launch(&mut self, set: usize) -> Result<()> {
        (self.launch)(set)
    }
    fn sets(&self) -> usize {
        self.sets
    }
    fn record(&mut self) -> Result<Timestamp> {
        self.dev.record()
    }
    fn elapsed_s(&mut self, a: Timestamp, b: Timestamp) -> Result<f64> {
        Ok(self.dev.elapsed_ms(a, b)? / 1e3)
    }
    fn synchronize(&mut self) -> Result<()> {
        self.dev.synchronize()
    }
    fn idle(&mut self, seconds: f64) {
        std::thread::sleep(Duration::from_secs_f64(seconds.max(0.0)));
    }
}

/// Fills a measured point from the protocol's result.
pub fn measured_point(mut p: Point, m: &protocol::Measurement, idle: Option<f64>, sets: usize) -> Point {
    p.seconds = Some(m.seconds);
    p.joules = Some(m.joules);
    p.joules_above_idle = m.joules_above_idle;
    p.watts = Some(m.watts);
    p.energy_method = m.method;
    p.throttled = m.throttled;
    p.calls = Some(m.calls);
    let d = p.detail.get_or_insert_with(Default::default);
    d.idle_watts = idle;
    d.buffer_sets = Some(sets as u32);
    d.warmup_seconds_per_call = Some(m.warmup_seconds_per_call);
    d.rep_seconds = m.reps.iter().map(|r| r.device_seconds / r.calls as f64).collect();
    d.rep_joules = m.reps.iter().map(|r| r.energy.joules / r.calls as f64).collect();
    d.rep_calls = m.reps.iter().map(|r| r.calls).collect();
    d.start = Some(m.start.clone());
    d.end = Some(m.end.clone());
    p
}

struct CudaWorker {
    dev: CudaDevice,
    src: NvmlSource,
    info: GpuInfo,
    idle: f64,
    proto: ProtocolConfig,
    data: HostData,
}

impl CudaWorker {
    fn new(ordinal: usize, cfg: &RunConfig) -> Result<Self> {
        let dev = CudaDevice::new(ordinal)?;
        let src = NvmlSource::for_uuid(&dev.uuid()?, Duration::from_millis(cfg.power_period_ms.max(1)))?;
        let mut info = src.info()?;
        info.sm_count = Some(dev.sm_count());
        info.cuda = dev.driver_version().ok().or(info.cuda);
        info.memory_bytes = Some(dev.total_memory() as u64);
        // Idle baseline: nothing running for idle_seconds, spent polling the energy counter to
        // learn how often it moves (how far each end of a window can lag).
        dev.synchronize()?;
        let m = energy::begin(&src)?;
        info.energy_counter_period_s = energy::counter_period(&src, cfg.idle_seconds.max(0.5), 1e-3)?;
        let idle = energy::end(&src, m)?.watts();
        Ok(CudaWorker { dev, src, info, idle, proto: cfg.protocol.clone(), data: HostData::new(cfg.seed) })
    }
}

impl Worker for CudaWorker {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Measured
    }
    fn info(&self) -> GpuInfo {
        self.info.clone()
    }
    fn idle_watts(&self) -> Option<f64> {
        Some(self.idle)
    }
    fn point(&mut self, spec: &PointSpec, seed: u64) -> Point {
        // Decode splits follow this GPU's SM count, not the H100 default.
        let opts = Options { sm_count: Some(self.dev.sm_count() as usize), ..Default::default() };
        let problem = match spec.problem() {
            Ok(p) => p,
            Err(e) => return failed(spec, e),
        };
        let att = match Attention::new(spec.variant, &problem, &opts) {
            Ok(a) => a,
            Err(e) => return failed(spec, e),
        };
        let (free, _) = match self.dev.mem_info() {
            Ok(x) => x,
            Err(e) => return failed(spec, e),
        };
        let footprint = att.footprint_bytes();
        if let Some((need_gib, have_gib)) = infeasible(footprint as u128, free as u128) {
            return blank_point(spec, PointStatus::Infeasible { need_gib, have_gib });
        }
        let s = spec.shape;
        let set_bytes = 4 * s.q_elems() + 4 * s.kv_elems() + 4 * s.lse_elems();
        let sets = super::buffer_sets(set_bytes, footprint, free);
        let bufs = match alloc_sets(&self.dev, &att, sets, &self.data) {
            Ok(b) => b,
            Err(e) => return failed(spec, format!("allocating {sets} buffer sets: {e}")),
        };
        let mut proto = self.proto.clone();
        proto.seed ^= seed;
        let res = {
            let _r =
                crate::nvtx::range(&crate::nvtx::point_name(spec.variant.name(), spec.phase.name(), s.seq_k, s.seq_q));
            let dev: &dyn Device = &self.dev;
            let mut t = DeviceTarget { dev, sets: bufs.len(), launch: |i: usize| att.run(dev, &bufs[i]).map(|_| ()) };
            protocol::measure(&mut t, &self.src, Some(self.idle), &proto)
        };
        free_sets(&self.dev, bufs);
        let _ = self.dev.reset_events();
        let mut p = match res {
            Ok(m) => measured_point(blank_point(spec, PointStatus::Ok), &m, Some(self.idle), sets),
            Err(e) => failed(spec, e),
        };
        p.detail.get_or_insert_with(Default::default).device = Some(self.dev.ordinal() as u32);
        p.detail.get_or_insert_with(Default::default).plan = Some(att.plan.description.clone());
        p
    }
    fn healthy(&mut self) -> bool {
        // A sticky fault fails every call in the context, so a sync and a small round trip tell.
        let dev = &self.dev;
        dev.synchronize().is_ok()
            && dev.alloc(256).is_ok_and(|b| {
                let filled = dev.fill(&b, 0x5a5a_5a5a).and_then(|_| dev.synchronize());
                dev.free(b).and(filled).is_ok()
            })
    }
    fn gemm(&mut self, m: usize, n: usize, k: usize) -> Result<GemmPoint> {
        let blas = Cublas::new(&self.dev)?;
        let set_bytes = 2 * (m * k + k * n + m * n);
        let (free, _) = self.dev.mem_info()?;
        if let Some((need, have)) = infeasible(set_bytes as u128, free as u128) {
            return Err(Error::Invalid(format!("GEMM {m}x{n}x{k} needs {need:.1} GiB, {have:.1} GiB free")));
        }
        let sets = super::buffer_sets(set_bytes, set_bytes, free);
        let mut bufs = Vec::new();
        // Every allocation, for freeing: a set whose B or C failed must not leak its A.
        let mut owned: Vec<DevBuf> = Vec::new();
        let res = (|| {
            for _ in 0..sets {
                let mut alloc = |bytes: usize| self.dev.alloc(bytes).inspect(|x| owned.push(*x));
                let (a, b, c) = (alloc(2 * m * k)?, alloc(2 * k * n)?, alloc(2 * m * n)?);
                bufs.push((a, b, c));
                self.data.upload(&self.dev, &a, m * k)?;
                self.data.upload(&self.dev, &b, k * n)?;
            }
            let _r = crate::nvtx::range(&format!("attnjoule.gemm.{m}x{n}x{k}"));
            let dev = &self.dev;
            let launch = |i: usize| {
                let (a, b, c) = &bufs[i];
                dev.gemm_bf16(&blas, (m, n, k), [a, b, c])
            };
            let mut t = DeviceTarget { dev, sets: bufs.len(), launch };
            protocol::measure(&mut t, &self.src, Some(self.idle), &self.proto)
        })();
        for x in owned {
            let _ = self.dev.free(x);
        }
        let _ = self.dev.reset_events();
        let meas = res?;
        Ok(GemmPoint {
            m: m as u64,
            n: n as u64,
            k: k as u64,
            seconds: meas.seconds,
            joules: Some(meas.joules),
            energy_method: meas.method,
        })
    }
}

/// The emulator as a worker: each point runs once and reports counters (no time or energy).
struct EmuWorker {
    dev: Box<dyn Device>,
    max_bytes: usize,
}

/// Sums counters field by field (through their JSON form, so new counter fields need no change).
fn add_counters(a: Option<crate::device::Counters>, b: &crate::device::Counters) -> Option<crate::device::Counters> {
    let Some(a) = a else { return Some(b.clone()) };
    let (mut va, vb) = (serde_json::to_value(&a).ok()?, serde_json::to_value(b).ok()?);
    if let (Some(ma), Some(mb)) = (va.as_object_mut(), vb.as_object()) {
        for (k, x) in ma.iter_mut() {
            if let (Some(p), Some(q)) = (x.as_u64(), mb.get(k).and_then(|y| y.as_u64())) {
                *x = serde_json::Value::from(p + q);
            }
        }
    }
    serde_json::from_value(va).ok()
}

impl Worker for EmuWorker {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Emulated
    }
    fn info(&self) -> GpuInfo {
        GpuInfo { name: self.dev.name(), sm_count: Some(self.dev.sm_count()), ..Default::default() }
    }
    fn idle_watts(&self) -> Option<f64> {
        None
    }
    fn point(&mut self, spec: &PointSpec, seed: u64) -> Point {
        // Decode splits follow this device's SM count (the emulator reports an H100's 132).
        let opts = Options { sm_count: Some(self.dev.sm_count() as usize), ..Default::default() };
        let problem = match spec.problem() {
            Ok(p) => p,
            Err(e) => return failed(spec, e),
        };
        let att = match Attention::new(spec.variant, &problem, &opts) {
            Ok(a) => a,
            Err(e) => return failed(spec, e),
        };
        if let Some((need_gib, have_gib)) = infeasible(att.footprint_bytes() as u128, self.max_bytes as u128) {
            return blank_point(spec, PointStatus::Infeasible { need_gib, have_gib });
        }
        let s = spec.shape;
        let q = crate::reference::random_bf16(s.q_elems(), seed);
        let k = crate::reference::random_bf16(s.kv_elems(), seed.wrapping_add(1));
        let v = crate::reference::random_bf16(s.kv_elems(), seed.wrapping_add(2));
        let t0 = Instant::now();
        match att.run_once(self.dev.as_ref(), &q, &k, &v) {
            Ok((out, reports)) => {
                let mut p = blank_point(spec, PointStatus::Ok);
                p.counters = reports.iter().filter_map(|r| r.counters.as_ref()).fold(None, add_counters);
                p.calls = Some(1);
                let findings: u64 = reports.iter().map(|r| r.findings_total).sum();
                let nan = out.o.iter().filter(|x| x.is_nan()).count();
                let wall = t0.elapsed().as_secs_f64();
                // The emulated output is checked against the f64 reference: a wrong kernel is a
                // failed point, not a counter profile.
                let err = crate::reference::attention(&problem, &q, &k, &v).map(|r| {
                    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
                    crate::reference::rel_l2(&got, &r.o)
                });
                let err = match err {
                    Ok(e) => e,
                    Err(e) => return failed(spec, e),
                };
                p.note = Some(format!(
                    "emulated in {wall:.2} s wall; rel L2 vs f64 reference {err:.2e}; {findings} sanitizer findings; \
                     {nan} unwritten outputs; not measured"
                ));
                if nan > 0 || err.is_nan() || err > 1e-2 {
                    p.status = PointStatus::Failed {
                        error: format!("emulated output wrong: rel L2 {err:.2e} vs the f64 reference, {nan} unwritten"),
                    };
                }
                p.detail =
                    Some(Box::new(PointDetail { plan: Some(att.plan.description.clone()), ..Default::default() }));
                p
            }
            Err(e) => failed(spec, e),
        }
    }
    fn gemm(&mut self, _m: usize, _n: usize, _k: usize) -> Result<GemmPoint> {
        Err(Error::Invalid("GEMM calibration needs cuBLAS on a GPU".into()))
    }
}

/// A filesystem-friendly GPU name ("NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3").
pub fn slug(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

fn log_name(shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("points-shard{}of{}.jsonl", s.index, s.count),
        None => "points.jsonl".into(),
    }
}

/// Makes the worker for the n-th entry of `--devices` (called on the worker's own thread).
pub type WorkerFactory = Arc<dyn Fn(usize, &RunConfig) -> Result<Box<dyn Worker>> + Send + Sync>;

/// The factory of `cfg.backend`: a CUDA device with NVML, or the emulator.
pub fn default_factory() -> WorkerFactory {
    Arc::new(|ordinal, cfg| match cfg.backend {
        BackendKind::Cuda => CudaWorker::new(ordinal, cfg).map(|w| Box::new(w) as Box<dyn Worker>),
        BackendKind::Emu => {
            emu_device().map(|dev| Box::new(EmuWorker { dev, max_bytes: cfg.emu_max_bytes }) as Box<dyn Worker>)
        }
    })
}

/// Runs the sweep; `progress` receives one line per finished point (and warnings).
pub fn run(cfg: &RunConfig, progress: &mut dyn FnMut(&str)) -> Result<Outcome> {
    if cfg.backend == BackendKind::Cuda {
        crate::device::cuda::probe().map_err(Error::NoGpu)?;
    }
    run_with(cfg, default_factory(), progress)
}

/// Runs the sweep with workers from `factory`.
/// Tells the workers waiting for the go to stop, and joins them: the sweep refused to start.
fn stop_workers(release: &dyn Fn(bool), handles: Vec<std::thread::JoinHandle<()>>) {
    release(false);
    for h in handles {
        let _ = h.join();
    }
}

/// Why an existing log at `log_path` must not be continued by this run, if it must not.
fn resume_refusal(h: &Header, cfg: &RunConfig, gpu: &GpuInfo, kind: ProfileKind, log_path: &Path) -> Option<Error> {
    if !cfg.resume {
        return Some(Error::Invalid(format!(
            "{} exists; pass --resume to continue it, or choose another --out",
            log_path.display()
        )));
    }
    if h.gpu.name != gpu.name || h.kind != kind {
        return Some(Error::Invalid(format!(
            "{} was written on {:?} ({:?}); refusing to resume it on {:?}",
            log_path.display(),
            h.gpu.name,
            h.kind,
            gpu.name
        )));
    }
    // A log of another shape (batch, heads, KV heads, head_dim) would mix its points into this
    // profile under the same curves; older logs without a recorded config are taken as they are.
    let logged = &h.config["spec"];
    let s = &cfg.spec;
    let differ: Vec<String> =
        [("batch", s.batch), ("heads", s.heads), ("kv_heads", s.kv_heads), ("head_dim", s.head_dim)]
            .into_iter()
            .filter_map(|(k, v)| logged[k].as_u64().filter(|&l| l != v as u64).map(|l| format!("{k} {l} (now {v})")))
            .collect();
    (!differ.is_empty()).then(|| {
        Error::Invalid(format!(
            "{} is a sweep of another shape: {}; refusing to resume it (choose another --out)",
            log_path.display(),
            differ.join(", ")
        ))
    })
}

pub fn run_with(cfg: &RunConfig, factory: WorkerFactory, progress: &mut dyn FnMut(&str)) -> Result<Outcome> {
    let all = super::enumerate(&cfg.spec)?;
    let mine = cfg.shard.map_or(all.clone(), |s| s.select(&all));
    let workers = match cfg.backend {
        BackendKind::Cuda => cfg.devices.clone(),
        BackendKind::Emu => vec![0],
    };
    if workers.is_empty() {
        return Err(Error::Invalid("--devices lists no GPU".into()));
    }

    // Start the workers; each reports its GPU before taking points.
    let queue: Arc<Mutex<std::collections::VecDeque<PointSpec>>> = Arc::new(Mutex::new(Default::default()));
    let (tx, rx) = mpsc::channel::<(usize, Msg)>();
    let go = Arc::new((Mutex::new(None::<bool>), std::sync::Condvar::new()));
    let mut handles = Vec::new();
    for (w, &ordinal) in workers.iter().enumerate() {
        let (queue, tx, go, cfg, factory) = (queue.clone(), tx.clone(), go.clone(), cfg.clone(), factory.clone());
        // GEMM calibration: once per sweep (first worker of shard 0); workers without cuBLAS skip it.
        let gemm_here = w == 0 && cfg.shard.is_none_or(|s| s.index == 0);
        handles.push(std::thread::spawn(move || {
            let made = factory(ordinal, &cfg);
            let mut worker = match made {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.send((w, Msg::Fatal(e)));
                    return;
                }
            };
            let _ = tx.send((w, Msg::Ready { kind: worker.kind(), info: worker.info(), idle: worker.idle_watts() }));
            // Wait for the coordinator's go (it may refuse mixed GPUs).
            let (lock, cv) = &*go;
            let mut g = lock.lock().unwrap_or_else(|p| p.into_inner());
            while g.is_none() {
                g = cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            let proceed = g.unwrap_or(false);
            drop(g);
            if !proceed {
                return;
            }
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some(spec) = next else { break };
                let t0 = Instant::now();
                let seed = cfg.seed ^ (crate::sweep::fnv(&spec.key()));
                let p = worker.point(&spec, seed);
                let failed = match &p.status {
                    PointStatus::Failed { error } => Some(error.clone()),
                    _ => None,
                };
                if tx.send((w, Msg::Point(Box::new(p), t0.elapsed().as_secs_f64()))).is_err() {
                    return;
                }
                if let Some(error) = failed.filter(|_| !worker.healthy()) {
                    drop(worker); // first: the old context must be released before a new one is made
                    worker = match factory(ordinal, &cfg).map(|mut x| (x.healthy(), x)) {
                        Ok((true, x)) => {
                            let m = format!("GPU {ordinal} unusable after a failed point ({error}); worker restarted");
                            let _ = tx.send((w, Msg::Warning(m)));
                            x
                        }
                        made => {
                            let why = made.err().map_or("still unusable".to_string(), |e| e.to_string());
                            let m = format!(
                                "GPU {ordinal} unusable after a failed point ({error}) and not restartable ({why}): \
                                 it stops here; `--resume` runs the points left"
                            );
                            let _ = tx.send((w, Msg::Warning(m)));
                            let _ = tx.send((w, Msg::Done));
                            return;
                        }
                    };
                }
            }
            if gemm_here {
                for &(m, n, k) in &cfg.gemm {
                    let _ = tx.send((w, Msg::Gemm(worker.gemm(m, n, k))));
                }
            }
            let _ = tx.send((w, Msg::Done));
        }));
    }
    drop(tx);
    let release = |ok: bool| {
        let (lock, cv) = &*go;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(ok);
        cv.notify_all();
    };

    // Collect the workers' GPUs; refuse to mix models or drivers.
    let mut infos: Vec<Option<(GpuInfo, Option<f64>)>> = vec![None; workers.len()];
    let mut kind = ProfileKind::Measured;
    let mut fatal = None;
    for _ in 0..workers.len() {
        match rx.recv() {
            Ok((w, Msg::Ready { kind: k, info, idle })) => {
                kind = k;
                infos[w] = Some((info, idle));
            }
            Ok((w, Msg::Fatal(e))) => {
                fatal.get_or_insert(if workers.len() > 1 {
                    Error::Invalid(format!("GPU {}: {e}", workers[w]))
                } else {
                    e
                });
            }
            Ok(_) | Err(_) => break,
        }
    }
    let ready: Vec<(GpuInfo, Option<f64>)> = infos.iter().flatten().cloned().collect();
    if fatal.is_none() {
        if let Some((a, _)) = ready.first() {
            if let Some((b, _)) = ready.iter().find(|(b, _)| b.name != a.name || b.driver != a.driver) {
                fatal =
                    Some(Error::Invalid(format!("--devices mixes GPU models or drivers: {} vs {}", a.name, b.name)));
            }
        }
    }
    if let Some(e) = fatal {
        stop_workers(&release, handles);
        return Err(e);
    }
    let (gpu, idle) = ready[0].clone();
    let mut early = Vec::new();
    if let Some(w) =
        gpu.energy_counter_period_s.and_then(|p| energy::counter_period_warning(p, cfg.protocol.min_seconds))
    {
        progress(&format!("warning: {w}"));
        early.push(w);
    }

    // Output folder and log; resume.
    let dir = cfg.out.clone().unwrap_or_else(|| {
        let who = if kind == ProfileKind::Emulated { "emulator".to_string() } else { slug(&gpu.name) };
        PathBuf::from("profiles").join(format!("{who}-{}", output::utc_date()))
    });
    let log_path = dir.join(log_name(cfg.shard));
    let existing = match jsonl::read(&log_path) {
        Ok(x) => x,
        Err(e) => {
            stop_workers(&release, handles);
            return Err(e);
        }
    };
    let mut warnings = existing.warnings.clone();
    warnings.extend(early);
    for w in &warnings {
        progress(&format!("warning: {w}"));
    }
    if let Some(e) = existing.header.as_ref().and_then(|h| resume_refusal(h, cfg, &gpu, kind, &log_path)) {
        stop_workers(&release, handles);
        return Err(e);
    }
    let mut writer = jsonl::Writer::open(&log_path, existing.valid_len)?;
    let header = match existing.header.clone() {
        Some(h) => h,
        None => {
            let h = Header {
                kind,
                gpu: gpu.clone(),
                created: output::utc_date(),
                tool: Some(format!("attnjoule {} sweep", env!("CARGO_PKG_VERSION"))),
                idle_watts: idle,
                config: serde_json::to_value(cfg).unwrap_or_default(),
                schema_version: crate::profile::SCHEMA_VERSION,
            };
            writer.append(&Line::Header(h.clone()))?;
            h
        }
    };
    let mut points: crate::profile::Points = existing.points.clone();
    let mut gemm: Vec<GemmPoint> = existing.gemm.clone();
    let done: std::collections::HashSet<String> = points
        .iter()
        .filter(|p| !(cfg.retry_failed && matches!(p.status, PointStatus::Failed { .. })))
        .map(point_key)
        .collect();
    if cfg.retry_failed {
        points.retain(|p| !matches!(p.status, PointStatus::Failed { .. }));
    }
    let todo: Vec<PointSpec> = mine.into_iter().filter(|p| !done.contains(&p.key())).collect();
    if !done.is_empty() {
        progress(&format!("resuming {}: {} points done, {} to go", log_path.display(), done.len(), todo.len()));
    }
    let total = todo.len();
    queue.lock().unwrap_or_else(|p| p.into_inner()).extend(todo);
    if cfg.resume {
        gemm.retain(|g| cfg.gemm.contains(&(g.m as usize, g.n as usize, g.k as usize)));
    }
    let gemm_done: Vec<(u64, u64, u64)> = gemm.iter().map(|g| (g.m, g.n, g.k)).collect();
    release(true);

    let t0 = Instant::now();
    let mut finished = 0usize;
    let mut live = workers.len() - infos.iter().filter(|x| x.is_none()).count();
    while live > 0 {
        let Ok((w, msg)) = rx.recv() else { break };
        match msg {
            Msg::Point(p, secs) => {
                writer.append(&Line::Point(p.clone()))?;
                finished += 1;
                let el = t0.elapsed().as_secs_f64();
                let eta = el / finished as f64 * (total - finished) as f64;
                progress(&format!(
                    "[{finished}/{total}] {}{} ({secs:.1} s) | elapsed {} | ETA {}",
                    if workers.len() > 1 { format!("gpu{} ", workers[w]) } else { String::new() },
                    output::summary(&p),
                    output::hms(el),
                    output::hms(eta)
                ));
                points.insert(*p);
            }
            Msg::Gemm(Ok(g)) => {
                if !gemm_done.contains(&(g.m, g.n, g.k)) {
                    writer.append(&Line::Gemm(g.clone()))?;
                    progress(&format!(
                        "gemm {}x{}x{}: {:.3} ms, {:.2} TFLOP/s{}",
                        g.m,
                        g.n,
                        g.k,
                        g.seconds.median * 1e3,
                        g.flops() / g.seconds.median / 1e12,
                        g.joules.map(|j| format!(", {:.3e} J/FLOP", j.median / g.flops())).unwrap_or_default()
                    ));
                    gemm.push(g);
                }
            }
            Msg::Gemm(Err(e)) => {
                let m = format!("GEMM calibration point skipped: {e}");
                progress(&format!("warning: {m}"));
                warnings.push(m);
            }
            Msg::Warning(m) => {
                progress(&format!("warning: {m}"));
                warnings.push(m);
            }
            Msg::Done => live -= 1,
            Msg::Ready { .. } | Msg::Fatal(_) => {}
        }
    }
    for h in handles {
        let _ = h.join();
    }
    let left = queue.lock().unwrap_or_else(|p| p.into_inner()).len();
    if left > 0 {
        let m = format!("{left} points not run (no usable GPU left); `--resume` runs them");
        progress(&format!("warning: {m}"));
        warnings.push(m);
    }

    let profile = Profile {
        schema_version: crate::profile::SCHEMA_VERSION,
        kind: header.kind,
        gpu: header.gpu.clone(),
        created: header.created.clone(),
        tool: header.tool.clone(),
        peaks: None,
        idle_watts: header.idle_watts,
        points,
        gemm,
        notes: match kind {
            ProfileKind::Emulated | ProfileKind::Analytical | ProfileKind::CpuDryRun => {
                vec!["CPU emulator: counters only; time and energy not measured".into()]
            }
            ProfileKind::Measured => vec![format!(
                "protocol: {} reps of >= {} s windows, medians; energy above idle subtracts {:.1} W",
                cfg.protocol.reps,
                cfg.protocol.min_seconds,
                header.idle_watts.unwrap_or(0.0)
            )],
        },
    };
    let stem = cfg.shard.map(|s| format!("profile-shard{}of{}", s.index, s.count)).unwrap_or_else(|| "profile".into());
    let files = output::write_all(&profile, &dir, &stem)?;
    Ok(Outcome { profile, dir, log: log_path, files, warnings })
}

/// GiB, for messages.
pub fn gib(bytes: usize) -> f64 {
    bytes as f64 / GIB
}

//! The measuring worker: each point's call is timed and metered by the protocol over rotated
//! input sets, on any device that can report its free memory and run the GEMM calibration
//! ([`Gpu`]): a CUDA GPU with NVML in a sweep, the emulator with a simulated energy counter in
//! the leak tests.

use super::{blank_point, failed, measured_point, Worker};
use crate::device::cuda::CudaDevice;
use crate::device::{DevBuf, Device, Timestamp};
use crate::energy::{self, EnergySource, NvmlSource};
use crate::error::{Error, Result};
use crate::ops::{Attention, Buffers, Options};
use crate::profile::{GemmPoint, GpuInfo, Point, PointStatus, ProfileKind};
use crate::sweep::backend::RunConfig;
use crate::sweep::protocol::{self, ProtocolConfig, Target};
use crate::sweep::{buffer_sets, infeasible, PointSpec};
use half::bf16;
use std::ops::ControlFlow;
use std::time::Duration;

/// What the measuring worker needs from a GPU besides the [`Device`] interface.
pub trait Gpu {
    fn device(&self) -> &dyn Device;
    /// The CUDA ordinal recorded with each point.
    fn ordinal(&self) -> usize;
    /// Device memory free now, in bytes.
    fn free_memory(&self) -> Result<usize>;
    /// The device's L2 size in bytes (input rotation spans twice this).
    fn l2_bytes(&self) -> usize {
        crate::sweep::DEFAULT_L2_BYTES
    }
    /// Releases the timing events of a finished point (CUDA events accumulate otherwise).
    fn reset_events(&self) -> Result<()>;
    /// Whether GEMMs can run (cuBLAS loads), asked before a GEMM point allocates its sets.
    fn gemm_ready(&self) -> Result<()> {
        Ok(())
    }
    /// Enqueues C = A·B, bf16 row-major of (m, n, k), for the GEMM calibration points.
    fn gemm_bf16(&self, dims: (usize, usize, usize), bufs: [&DevBuf; 3]) -> Result<()>;
}

impl Gpu for CudaDevice {
    fn device(&self) -> &dyn Device {
        self
    }
    fn ordinal(&self) -> usize {
        CudaDevice::ordinal(self)
    }
    fn free_memory(&self) -> Result<usize> {
        Ok(self.mem_info()?.0)
    }
    fn l2_bytes(&self) -> usize {
        CudaDevice::l2_bytes(self)
    }
    fn reset_events(&self) -> Result<()> {
        CudaDevice::reset_events(self)
    }
    fn gemm_ready(&self) -> Result<()> {
        self.cublas()
    }
    fn gemm_bf16(&self, dims: (usize, usize, usize), bufs: [&DevBuf; 3]) -> Result<()> {
        CudaDevice::gemm_bf16(self, dims, bufs)
    }
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
    fn upload(&self, buf: &DevBuf, elems: usize) -> Result<()> {
        let mut off = 0;
        while off < elems {
            let n = (elems - off).min(self.block.len());
            buf.upload(2 * off, &self.block[..n])?;
            off += n;
        }
        Ok(())
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

/// Times and meters points on one GPU.
pub struct GpuWorker<G: Gpu> {
    gpu: G,
    src: Box<dyn EnergySource>,
    info: GpuInfo,
    idle: f64,
    proto: ProtocolConfig,
    data: HostData,
}

impl GpuWorker<CudaDevice> {
    /// CUDA device `ordinal`, metered by NVML.
    pub fn cuda(ordinal: usize, cfg: &RunConfig) -> Result<Self> {
        let dev = CudaDevice::new(ordinal)?;
        let src = NvmlSource::for_uuid(&dev.uuid()?, Duration::from_millis(cfg.power_period_ms.max(1)))?;
        let mut info = src.info()?;
        info.sm_count = Some(dev.sm_count());
        info.cuda = dev.driver_version().ok().or(info.cuda);
        info.memory_bytes = Some(dev.total_memory() as u64);
        Self::new(dev, Box::new(src), info, cfg)
    }
}

impl<G: Gpu> GpuWorker<G> {
    /// Takes the idle baseline: nothing running for `cfg.idle_seconds`, spent polling the energy
    /// counter to learn how often it moves (how far each end of a window can lag).
    pub fn new(gpu: G, src: Box<dyn EnergySource>, mut info: GpuInfo, cfg: &RunConfig) -> Result<Self> {
        gpu.device().synchronize()?;
        let m = energy::begin(src.as_ref())?;
        info.energy_counter_period_s = energy::counter_period(src.as_ref(), cfg.idle_seconds.max(0.5), 1e-3)?;
        let idle = energy::end(src.as_ref(), m)?.watts();
        Ok(GpuWorker { gpu, src, info, idle, proto: cfg.protocol.clone(), data: HostData::new(cfg.seed) })
    }

    /// The buffers of one point: `sets` input sets filled from the host data, outputs poisoned.
    fn buffers<'d>(&self, dev: &'d dyn Device, att: &Attention, sets: usize) -> Result<Buffers<'d>> {
        let bufs = att.alloc(dev, sets)?;
        for i in 0..sets {
            att.upload_repeating(&bufs, i, &self.data.block)?;
        }
        att.poison_outputs(&bufs)?;
        Ok(bufs)
    }

    /// The measured (or failed) point, or (`Break`) the point of a call that did not get as far
    /// as measuring (no memory information, too large, allocation failed).
    fn measure(&self, spec: &PointSpec, seed: u64, att: &Attention) -> ControlFlow<Point, Point> {
        let dev = self.gpu.device();
        let free = match self.gpu.free_memory() {
            Ok(x) => x,
            Err(e) => return ControlFlow::Break(failed(spec, e)),
        };
        let footprint = att.footprint_bytes();
        if let Some((need_gib, have_gib)) = infeasible(footprint as u128, free as u128) {
            return ControlFlow::Break(blank_point(spec, PointStatus::Infeasible { need_gib, have_gib }));
        }
        let sets = buffer_sets(att.set_bytes(), footprint, free, self.gpu.l2_bytes());
        let bufs = match self.buffers(dev, att, sets) {
            Ok(b) => b,
            Err(e) => return ControlFlow::Break(failed(spec, format!("allocating {sets} buffer sets: {e}"))),
        };
        let mut proto = self.proto.clone();
        proto.seed ^= seed;
        let s = spec.shape;
        let _r = crate::nvtx::range(&crate::nvtx::point_name(spec.variant.name(), spec.phase.name(), s.seq_k, s.seq_q));
        let mut t = DeviceTarget { dev, sets, launch: |i: usize| att.run(&bufs, i).map(|_| ()) };
        ControlFlow::Continue(match protocol::measure(&mut t, self.src.as_ref(), Some(self.idle), &proto) {
            Ok(m) => measured_point(blank_point(spec, PointStatus::Ok), &m, Some(self.idle), sets),
            Err(e) => failed(spec, e),
        })
    }
}

impl<G: Gpu> Worker for GpuWorker<G> {
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
        let opts = Options { sm_count: Some(self.gpu.device().sm_count() as usize), ..Default::default() };
        let problem = match spec.problem() {
            Ok(p) => p,
            Err(e) => return failed(spec, e),
        };
        let att = match Attention::new(spec.variant, &problem, &opts) {
            Ok(a) => a,
            Err(e) => return failed(spec, e),
        };
        let mut p = match self.measure(spec, seed, &att) {
            ControlFlow::Continue(p) => p,
            ControlFlow::Break(early) => return early,
        };
        let _ = self.gpu.reset_events();
        let d = p.detail.get_or_insert_with(Default::default);
        d.device = Some(self.gpu.ordinal() as u32);
        d.plan = Some(att.plan().description.clone());
        p
    }
    fn healthy(&mut self) -> bool {
        // A sticky fault fails every call in the context, so a sync and a small round trip tell.
        let dev = self.gpu.device();
        dev.synchronize().is_ok()
            && DevBuf::new(dev, 256).is_ok_and(|b| b.fill(0x5a5a_5a5a).and_then(|_| dev.synchronize()).is_ok())
    }
    fn gemm(&mut self, m: usize, n: usize, k: usize) -> Result<GemmPoint> {
        self.gpu.gemm_ready()?;
        let set_bytes = 2 * (m * k + k * n + m * n);
        let free = self.gpu.free_memory()?;
        if let Some((need, have)) = infeasible(set_bytes as u128, free as u128) {
            return Err(Error::Invalid(format!("GEMM {m}x{n}x{k} needs {need:.1} GiB, {have:.1} GiB free")));
        }
        let sets = buffer_sets(set_bytes, set_bytes, free, self.gpu.l2_bytes());
        let dev = self.gpu.device();
        let alloc_set = || -> Result<[DevBuf; 3]> {
            let (a, b, c) = (DevBuf::new(dev, 2 * m * k)?, DevBuf::new(dev, 2 * k * n)?, DevBuf::new(dev, 2 * m * n)?);
            self.data.upload(&a, m * k)?;
            self.data.upload(&b, k * n)?;
            Ok([a, b, c])
        };
        let bufs = (0..sets).map(|_| alloc_set()).collect::<Result<Vec<_>>>()?;
        let res = {
            let _r = crate::nvtx::range(&format!("attnjoule.gemm.{m}x{n}x{k}"));
            let launch = |i: usize| {
                let [a, b, c] = &bufs[i];
                self.gpu.gemm_bf16((m, n, k), [a, b, c])
            };
            let mut t = DeviceTarget { dev, sets, launch };
            protocol::measure(&mut t, self.src.as_ref(), Some(self.idle), &self.proto)
        };
        drop(bufs);
        let _ = self.gpu.reset_events();
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

//! Criterion benches per variant and context size.
//!
//! On a GPU: two custom criterion `Measurement`s: `GpuTime` (seconds from CUDA events around
//! each sample) and `GpuEnergy` (joules from NVML's energy counter, or integrated power samples);
//! energy samples are long and flat (≥ 1 s each) because NVML's readings are coarse.
//! Without a GPU, `cargo bench` says so and benches the f64 reference (and the CPU emulator when
//! it is in the build) on small shapes instead: CPU numbers, not GPU claims.

use attnjoule::device::cuda::CudaDevice;
use attnjoule::device::{Device, Timestamp};
use attnjoule::energy::{self, EnergySource, NvmlSource};
use attnjoule::ops::{Attention, Buffers, Options};
use attnjoule::problem::{Problem, Shape};
use attnjoule::work::Variant;
use attnjoule::Mask;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use std::rc::Rc;
use std::time::Duration;

/// Formats seconds or joules with SI prefixes.
struct Si(&'static [&'static str; 4]);

impl ValueFormatter for Si {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (f, i) = match typical.abs() {
            x if x >= 1.0 => (1.0, 0),
            x if x >= 1e-3 => (1e3, 1),
            x if x >= 1e-6 => (1e6, 2),
            _ => (1e9, 3),
        };
        values.iter_mut().for_each(|v| *v *= f);
        self.0[i]
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        // Elements are FLOPs here: report FLOP per second (or per joule) in T.
        if let Throughput::Elements(n) = t {
            values.iter_mut().for_each(|v| *v = *n as f64 / *v / 1e12);
        }
        if self.0[0] == "s" {
            "TFLOP/s"
        } else {
            "TFLOP/J"
        }
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        self.0[0]
    }
}

static SECONDS: Si = Si(&["s", "ms", "µs", "ns"]);
static JOULES: Si = Si(&["J", "mJ", "µJ", "nJ"]);

/// GPU time of a sample, from CUDA events.
struct GpuTime(Rc<CudaDevice>);

impl Measurement for GpuTime {
    type Intermediate = Timestamp;
    type Value = f64;
    fn start(&self) -> Timestamp {
        self.0.record().expect("cuEventRecord")
    }
    fn end(&self, t: Timestamp) -> f64 {
        let e = self.0.record().expect("cuEventRecord");
        self.0.elapsed_ms(t, e).expect("cuEventElapsedTime") / 1e3
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &SECONDS
    }
}

/// Board energy of a sample, from NVML (synchronizing at both ends so the sample's work is inside).
struct GpuEnergy(Rc<CudaDevice>, NvmlSource);

impl Measurement for GpuEnergy {
    type Intermediate = energy::Mark;
    type Value = f64;
    fn start(&self) -> energy::Mark {
        self.0.synchronize().expect("synchronize");
        energy::begin(&self.1).expect("NVML energy")
    }
    fn end(&self, m: energy::Mark) -> f64 {
        self.0.synchronize().expect("synchronize");
        match energy::end(&self.1, m) {
            Ok(w) => w.joules,
            // Criterion's warm-up (and `--test`) times 1, 2, 4 ... calls: windows of micro- to
            // milliseconds, in which NVML's counter need not move and fewer than two power
            // samples fall, so `energy::end` refuses them. Criterion keeps only their wall time;
            // estimate them from the board power now instead of aborting the bench. The measured
            // samples (~2 s each) always take the branch above.
            Err(_) => {
                let watts = self.1.state().ok().and_then(|s| s.power_w).unwrap_or(0.0);
                watts * (self.1.now() - m.t).max(0.0)
            }
        }
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &JOULES
    }
}

const GPU_CONTEXTS: [usize; 4] = [1024, 4096, 16384, 65536];

fn problem(v: Variant, ctx: usize) -> Problem {
    let shape = match v {
        Variant::Decode => Shape::decode(1, 1, ctx, 8, 1, 128),
        _ => Shape::prefill(1, ctx, 8, 1, 128),
    };
    Problem::new(shape, Mask::Causal)
}

/// Prepared calls that fit the GPU: (variant, ctx, call, buffers).
fn gpu_calls(dev: &CudaDevice) -> Vec<(Variant, usize, Attention, Buffers<'_>)> {
    let mut out = Vec::new();
    let free = dev.mem_info().map(|m| m.0).unwrap_or(0);
    // Decode splits follow this GPU's SM count, as in the sweep (not the H100 SXM default).
    let opts = Options { sm_count: Some(dev.sm_count() as usize), ..Default::default() };
    for v in [Variant::Dense, Variant::Flash, Variant::Decode] {
        for ctx in GPU_CONTEXTS {
            let att = match Attention::new(v, &problem(v, ctx), &opts) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("skip {} ctx={ctx}: {e}", v.name());
                    continue;
                }
            };
            if attnjoule::sweep::infeasible(att.footprint_bytes() as u128, free as u128 / 2).is_some() {
                eprintln!("skip {} ctx={ctx}: does not fit", v.name());
                continue;
            }
            let s = att.problem().shape;
            let seed = attnjoule::reference::fresh_seed();
            let q = attnjoule::reference::random_bf16(s.q_elems(), seed);
            let k = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 1);
            let vv = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 2);
            let b = att.alloc(dev, 1).expect("alloc");
            att.upload_inputs(&b, 0, &q, &k, &vv).expect("upload");
            out.push((v, ctx, att, b));
        }
    }
    out
}

fn gpu_benches(dev: Rc<CudaDevice>) {
    let calls = gpu_calls(&dev);
    let mut c = Criterion::default().with_measurement(GpuTime(dev.clone())).configure_from_args();
    {
        let mut g = c.benchmark_group("gpu_time");
        for (v, ctx, att, b) in &calls {
            g.throughput(Throughput::Elements(att.work().flops as u64));
            g.bench_with_input(BenchmarkId::new(v.name(), ctx), &(), |bch, _| {
                let _r = attnjoule::nvtx::range(&format!("bench.{}.ctx{ctx}", v.name()));
                bch.iter(|| att.run(b, 0).expect("launch"))
            });
        }
        g.finish();
    }
    c.final_summary();
    let src = dev.uuid().and_then(|u| NvmlSource::for_uuid(&u, Duration::from_millis(10)));
    match src {
        Err(e) => eprintln!("energy benches skipped: {e}"),
        Ok(src) => {
            let mut c = Criterion::default()
                .with_measurement(GpuEnergy(dev.clone(), src))
                .sample_size(10)
                .measurement_time(Duration::from_secs(20))
                .configure_from_args();
            let mut g = c.benchmark_group("gpu_energy");
            g.sampling_mode(SamplingMode::Flat);
            for (v, ctx, att, b) in &calls {
                g.throughput(Throughput::Elements(att.work().flops as u64));
                g.bench_with_input(BenchmarkId::new(v.name(), ctx), &(), |bch, _| {
                    let _r = attnjoule::nvtx::range(&format!("bench.energy.{}.ctx{ctx}", v.name()));
                    bch.iter(|| att.run(b, 0).expect("launch"))
                });
            }
            g.finish();
            c.final_summary();
        }
    }
}

fn cpu_benches() {
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let mut g = c.benchmark_group("cpu_reference_f64");
    for ctx in [64usize, 256, 1024] {
        let p = Problem::new(Shape::prefill(1, ctx, 8, 1, 128), Mask::Causal);
        let s = p.shape;
        let seed = attnjoule::reference::fresh_seed();
        let q = attnjoule::reference::random_bf16(s.q_elems(), seed);
        let k = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 1);
        let v = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 2);
        g.throughput(Throughput::Elements(attnjoule::work::useful_flops(&p) as u64));
        g.bench_with_input(BenchmarkId::new("prefill_causal", ctx), &(), |b, _| {
            b.iter(|| attnjoule::reference::attention(&p, &q, &k, &v).expect("reference"))
        });
    }
    g.finish();
    emulator_benches(&mut c);
    c.final_summary();
}

/// The emulator running the dense kernels (small shapes), when the emulator is in the build.
fn emulator_benches(_c: &mut Criterion) {
    match attnjoule::sweep::backend::emu_device() {
        Err(e) => eprintln!("emulator benches skipped: {e}"),
        Ok(dev) => {
            let mut g = _c.benchmark_group("emulator_dense");
            g.sample_size(10);
            for ctx in [64usize, 256] {
                let p = Problem::new(Shape::prefill(1, ctx, 8, 1, 128), Mask::Causal);
                let att = Attention::new(Variant::Dense, &p, &Options::default()).expect("dense plan");
                let s = p.shape;
                let seed = attnjoule::reference::fresh_seed();
                let q = attnjoule::reference::random_bf16(s.q_elems(), seed);
                let k = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 1);
                let v = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 2);
                g.bench_with_input(BenchmarkId::new("dense_causal", ctx), &(), |b, _| {
                    b.iter(|| att.run_once(dev.as_ref(), &q, &k, &v).expect("emulated run"))
                });
            }
            g.finish();
        }
    }
}

fn main() {
    match CudaDevice::new(0) {
        Ok(dev) => gpu_benches(Rc::new(dev)),
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "no CUDA GPU: benchmarking the f64 reference and the CPU emulator instead (CPU numbers, not GPU)"
            );
            cpu_benches();
        }
    }
}

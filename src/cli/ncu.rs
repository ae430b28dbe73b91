//! `attnjoule ncu`: one call of one variant inside a named NVTX range, for Nsight Compute:
//!
//! ```text
//! ncu --nvtx --nvtx-include "attnjoule.flash.prefill.ctx32768.q32768/" \
//!     --section-folder profiles/ncu --section AttnjouleSummary --csv --page raw \
//!     attnjoule ncu --variant flash --ctx 32768 > report.csv
//! ```
//! (profiles/ncu/README.md). Warm-up launches run before the range so that module loading and
//! first-touch effects stay out of the profiled launch.

use crate::cli::out::errln;

use attnjoule::device::cuda::CudaDevice;
use attnjoule::device::Device;
use attnjoule::mask::MaskRecipe;
use attnjoule::ops::{Attention, Options};
use attnjoule::profile::Phase;
use attnjoule::sweep::PointSpec;
use attnjoule::work::Variant;
use attnjoule::Shape;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "flash")]
    variant: Variant,
    /// Context (keys).
    #[arg(long, default_value_t = 32768)]
    ctx: usize,
    /// Default: decode for the decode variant, else prefill.
    #[arg(long, value_enum)]
    phase: Option<Phase>,
    /// Decode: new tokens.
    #[arg(long, default_value_t = 1)]
    decode_tokens: usize,
    /// none, causal, window:<keys>, longformer:<block>:<local>:<global>,
    /// bigbird:<block>:<local>:<global>:<random>:<seed>, strided:<block>:<local>:<stride>, csr:<path>
    #[arg(long, default_value = "causal", value_parser = MaskRecipe::from_arg)]
    mask: MaskRecipe,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 8)]
    heads: usize,
    #[arg(long, default_value_t = 1)]
    kv_heads: usize,
    #[arg(long, default_value_t = 128)]
    head_dim: usize,
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    #[arg(long, default_value_t = 0)]
    device: usize,
}

pub fn spec(a: &Args) -> anyhow::Result<PointSpec> {
    let variant = a.variant;
    let phase = match a.phase {
        Some(p) => p,
        None if variant == Variant::Decode => Phase::Decode,
        None => Phase::Prefill,
    };
    let shape = match phase {
        Phase::Prefill => Shape::prefill(a.batch, a.ctx, a.heads, a.kv_heads, a.head_dim),
        Phase::Decode => Shape::decode(a.batch, a.decode_tokens, a.ctx, a.heads, a.kv_heads, a.head_dim),
    };
    let mask = a.mask.clone();
    mask.validate(shape.seq_q, shape.seq_k)?;
    Ok(PointSpec { variant, phase, mask, shape })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let spec = spec(&a)?;
    let dev = CudaDevice::new(a.device)?;
    if !attnjoule::nvtx::available() {
        errln!("warning: libnvToolsExt not loadable: no NVTX range will be emitted (ncu --nvtx-include will match nothing)");
    }
    let opts = Options { sm_count: Some(dev.sm_count() as usize), ..Default::default() };
    let att = Attention::new(spec.variant, &spec.problem()?, &opts)?;
    let s = spec.shape;
    let seed = attnjoule::reference::fresh_seed();
    errln!("seed {seed}");
    let q = attnjoule::reference::random_bf16(s.q_elems(), seed);
    let k = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 1);
    let v = attnjoule::reference::random_bf16(s.kv_elems(), seed ^ 2);
    let bufs = att.alloc(&dev)?;
    att.upload_inputs(&dev, &bufs, &q, &k, &v)?;
    att.poison_outputs(&dev, &bufs)?;
    for _ in 0..a.warmup {
        att.run(&dev, &bufs)?;
    }
    dev.synchronize()?;
    let name = attnjoule::nvtx::point_name(spec.variant.name(), spec.phase.name(), s.seq_k, s.seq_q);
    {
        let _r = attnjoule::nvtx::range(&name);
        att.run(&dev, &bufs)?;
        dev.synchronize()?;
    }
    bufs.free(&dev)?;
    errln!("profiled one call of {} inside NVTX range {name:?} ({})", spec.label(), att.plan.description);
    errln!("ncu filter: --nvtx --nvtx-include \"{name}/\"");
    Ok(())
}

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
use attnjoule::mask::MaskRecipe;
use attnjoule::profile::Phase;
use attnjoule::sweep::{ncu, PointSpec};
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
    Ok(PointSpec { variant, phase, mask, shape, serving: Default::default() })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let spec = spec(&a)?;
    let dev = CudaDevice::new(a.device)?;
    if !attnjoule::nvtx::available() {
        errln!("warning: libnvToolsExt not loadable: no NVTX range will be emitted (ncu --nvtx-include will match nothing)");
    }
    let seed = attnjoule::reference::fresh_seed();
    errln!("seed {seed}");
    let call = ncu::profile_call(&dev, &spec, a.warmup, seed)?;
    let name = &call.range;
    errln!("profiled one call of {} inside NVTX range {name:?} ({})", spec.label(), call.plan);
    errln!("ncu filter: --nvtx --nvtx-include \"{name}/\"");
    Ok(())
}

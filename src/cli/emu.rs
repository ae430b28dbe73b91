//! `attnjoule emu`: runs one attention variant on the CPU emulator (the exact PTX nvcc produced)
//! and prints its error against the f64 reference, the time taken, and with `--counters` the
//! Nsight-style counters and sanitizer findings of each launch.

use crate::cli::out::outln;

use anyhow::{anyhow, bail, Context};
use attnjoule::device::{Counters, Device, LaunchReport};
use attnjoule::emu::{EmuDevice, EmuOptions};
use attnjoule::mask::MaskRecipe;
use attnjoule::ops::{Attention, Options};
use attnjoule::problem::{Problem, Shape};
use attnjoule::reference;
use attnjoule::work::Variant;
use serde::Serialize;

/// What `emu` runs: an attention variant, or the serving-decode kernels on a paged batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EmuVariant {
    Dense,
    Flash,
    FlashHopper,
    FlashHopperFp8,
    Decode,
    /// A ragged batch over a paged cache (--page-size, --kv-dtype, --mix; --seq new tokens).
    DecodePaged,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "dense")]
    variant: EmuVariant,
    /// Query (and, unless --seq-k is given, key) sequence length.
    #[arg(long, default_value_t = 256)]
    seq: usize,
    /// Key sequence length (default: --seq).
    #[arg(long)]
    seq_k: Option<usize>,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 4)]
    kv_heads: usize,
    #[arg(long, default_value_t = 128)]
    head_dim: usize,
    /// none, causal, window:<keys>, longformer:<block>:<local>:<global>,
    /// bigbird:<block>:<local>:<global>:<random>:<seed>, strided:<block>:<local>:<stride>, csr:<path>
    #[arg(long, default_value = "causal", value_parser = MaskRecipe::from_arg)]
    mask: MaskRecipe,
    /// Decode: number of KV splits.
    #[arg(long)]
    splits: Option<usize>,
    /// SMs the plan assumes (decode's splits; flash-hopper's persistent grid: fewer CTAs than
    /// work tiles make each CTA loop). Default: the H100's 132.
    #[arg(long)]
    sms: Option<usize>,
    /// Print counters and findings of each launch.
    #[arg(long)]
    counters: bool,
    /// Turn the sanitizer off (faster; faults stop the run instead of being reported).
    #[arg(long)]
    no_sanitize: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Input seed (default: fresh).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Refuse calls whose emulation needs more host memory than this (GiB): device buffers,
    /// inputs and the f64 reference.
    #[arg(long, default_value_t = 8.0)]
    max_gib: f64,
    /// Stop an emulation still running after this many seconds (1 .. 86400).
    #[arg(long, default_value_t = 600.0)]
    max_seconds: f64,
    /// decode-paged: tokens per page (16..256, a power of two).
    #[arg(long, default_value_t = 64)]
    page_size: usize,
    /// decode-paged: the cache's dtype.
    #[arg(long, value_enum, default_value = "bf16")]
    kv_dtype: attnjoule::paged::KvDtype,
    /// decode-paged: a ragged mix mix<count>:<seed> of lengths up to --seq-k (default: --batch
    /// sequences of --seq-k keys).
    #[arg(long)]
    mix: Option<attnjoule::paged::mix::Mix>,
}

#[derive(Serialize)]
struct Summary {
    variant: String,
    shape: Shape,
    mask: String,
    seed: u64,
    rel_l2: f64,
    lse_max_abs_err: f64,
    lse_inf_rows_agree: bool,
    /// FNV-1a (64-bit) of the outputs' bits: O's bf16 values then LSE's f32 values, each
    /// little-endian, so that two runs (or two builds) can be compared bit for bit.
    output_hash: String,
    seconds: f64,
    thread_instructions: u64,
    thread_instructions_per_second: f64,
    findings_total: u64,
    plan: String,
    launches: Vec<LaunchSummary>,
}

#[derive(Serialize)]
pub(super) struct LaunchSummary {
    pub(super) kernel: String,
    pub(super) report: LaunchReport,
}

/// FNV-1a, 64-bit, of `bytes` (a stable fingerprint of an output, not a cryptographic hash).
fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

pub(super) fn thread_insts(c: &Counters) -> u64 {
    c.inst_arith + c.inst_memory + c.inst_tensor + c.inst_control + c.inst_sync
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let variant = match a.variant {
        EmuVariant::Dense => Variant::Dense,
        EmuVariant::Flash => Variant::Flash,
        EmuVariant::FlashHopper => Variant::FlashHopper,
        EmuVariant::FlashHopperFp8 => Variant::FlashHopperFp8,
        EmuVariant::Decode => Variant::Decode,
        EmuVariant::DecodePaged => return run_paged(a),
    };
    let shape = Shape {
        batch: a.batch,
        seq_q: a.seq,
        seq_k: a.seq_k.unwrap_or(a.seq),
        heads: a.heads,
        kv_heads: a.kv_heads,
        head_dim: a.head_dim,
    };
    shape.validate()?;
    a.mask.validate(shape.seq_q, shape.seq_k)?;
    // Up front, with the GiB it needs: an emulated call holds its device buffers (with their
    // shadow), bf16 and f64 copies of the inputs, and the f64 reference and result. Checked on
    // the inputs before planning (a plan walks the sequence), then with the plan's scratch.
    if !(a.max_gib.is_finite() && a.max_gib > 0.0) {
        bail!("--max-gib must be a positive number of GiB, got {}", a.max_gib);
    }
    attnjoule::emu::check_host_memory((a.max_gib * attnjoule::sweep::GIB) as u128, "--max-gib")?;
    let (qe, kve, lse) = (shape.q_elems() as u128, shape.kv_elems() as u128, shape.lse_elems() as u128);
    let fits = |device_bytes: u128| {
        let need = attnjoule::emu::host_bytes_for(device_bytes) + 34 * qe + 20 * kve + 64 * lse;
        let gib = need as f64 / attnjoule::sweep::GIB;
        if gib > a.max_gib {
            bail!(
                "emulating this call needs about {gib:.1} GiB of memory, more than --max-gib {}; use a smaller \
                 --seq, --batch or --heads (the emulator runs small sizes)",
                a.max_gib
            );
        }
        Ok(())
    };
    fits(4 * (qe + kve + lse))?;
    let mask = a.mask.mask(shape.seq_q, shape.seq_k)?;
    let p = Problem::new(shape, mask.clone());
    let att = Attention::new(variant, &p, &Options { splits: a.splits, sm_count: a.sms })?;
    fits(att.footprint_bytes() as u128)?;
    let dev = emulator(a.no_sanitize, a.threads, a.max_seconds)?;
    let seed = a.seed.unwrap_or_else(reference::fresh_seed);
    let q = reference::random_bf16(shape.q_elems(), seed);
    let k = reference::random_bf16(shape.kv_elems(), seed.wrapping_add(1));
    let v = reference::random_bf16(shape.kv_elems(), seed.wrapping_add(2));
    let t = std::time::Instant::now();
    let (out, reports) = att.run_once(&dev, &q, &k, &v).with_context(|| over_limit(a.max_seconds))?;
    let seconds = t.elapsed().as_secs_f64();
    // e4m3 inputs: the reference computes with the values the kernel received.
    let want = if variant == Variant::FlashHopperFp8 {
        let f = attnjoule::ops::fp8::quantize(&shape, &q, &k, &v);
        reference::attention_f64(&p, &f.q_values, &f.k_values, &f.v_values)?
    } else {
        reference::attention(&p, &q, &k, &v)?
    };
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    let rel_l2 = reference::rel_l2(&got, &want.o);
    let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
    let insts: u64 = reports.iter().filter_map(|r| r.counters.as_ref()).map(thread_insts).sum();
    let s = Summary {
        variant: variant.name().into(),
        shape,
        mask: a.mask.to_string(),
        seed,
        rel_l2,
        lse_max_abs_err: lse_err,
        lse_inf_rows_agree: inf_ok,
        output_hash: format!(
            "{:016x}",
            fnv1a64(
                out.o
                    .iter()
                    .flat_map(|x| x.to_bits().to_le_bytes())
                    .chain(out.lse.iter().flat_map(|x| x.to_bits().to_le_bytes()))
            )
        ),
        seconds,
        thread_instructions: insts,
        thread_instructions_per_second: insts as f64 / seconds,
        findings_total: reports.iter().map(|r| r.findings_total).sum(),
        plan: att.plan().description.clone(),
        launches: att
            .plan()
            .launches
            .iter()
            .zip(reports)
            .map(|(l, r)| LaunchSummary { kernel: l.kernel.entry().to_string(), report: r })
            .collect(),
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    outln!("{} on {}", variant.name(), dev.name());
    outln!("shape {shape:?}, mask {}, seed {seed}, plan: {}", s.mask, s.plan);
    outln!("rel L2 error {:.3e} (limit 1e-2), LSE max abs error {:.3e} (-inf rows agree: {inf_ok})", rel_l2, lse_err);
    outln!(
        "emulated in {seconds:.3} s: {insts} thread-instructions, {:.1} M thread-instructions/s",
        s.thread_instructions_per_second / 1e6
    );
    outln!("output hash (FNV-1a of O and LSE bits) {}", s.output_hash);
    outln!("sanitizer findings: {}", s.findings_total);
    for l in &s.launches {
        print_launch(l, a.counters, &|_| None);
    }
    if rel_l2.is_nan() || rel_l2 > 1e-2 {
        return Err(anyhow!("rel L2 error {rel_l2:.3e} exceeds 1e-2"));
    }
    Ok(())
}

/// `emu --variant decode-paged`: one serving-decode step (the paged kernels) against the f64
/// reference of its (dequantized) cache.
fn run_paged(a: Args) -> anyhow::Result<()> {
    use attnjoule::ops::paged::{PagedAttention, PagedInputs, PagedOptions};
    use attnjoule::paged::{Allocation, PagedBatch, SeqSpec};
    if !(a.max_gib.is_finite() && a.max_gib > 0.0) {
        bail!("--max-gib must be a positive number of GiB, got {}", a.max_gib);
    }
    attnjoule::emu::check_host_memory((a.max_gib * attnjoule::sweep::GIB) as u128, "--max-gib")?;
    let keys = a.seq_k.unwrap_or(a.seq);
    let lengths = match a.mix {
        Some(m) => m.lengths(keys),
        None => vec![keys; a.batch],
    };
    let seqs: Vec<SeqSpec> = lengths.iter().map(|&k| SeqSpec { keys: k, new_tokens: a.seq }).collect();
    let b = PagedBatch::allocate(
        a.heads,
        a.kv_heads,
        a.head_dim,
        a.page_size,
        a.kv_dtype,
        &seqs,
        Allocation { shuffle: Some(1), ..Default::default() },
    )?;
    // The device pools, their bf16 host copies and the f64 reference's rows, before planning.
    let pool_bytes = b.pool_elems() as f64 * 2.0;
    let gib =
        (attnjoule::emu::host_bytes_for((2.0 * pool_bytes) as u128) as f64 + 4.0 * pool_bytes) / attnjoule::sweep::GIB;
    if gib > a.max_gib {
        bail!("emulating this step needs about {gib:.1} GiB of memory, more than --max-gib {}", a.max_gib);
    }
    let att = PagedAttention::with_recipe(&b, &a.mask, &PagedOptions::default())?;
    let dev = emulator(a.no_sanitize, a.threads, a.max_seconds)?;
    let seed = a.seed.unwrap_or_else(reference::fresh_seed);
    let inputs = PagedInputs::random(&b, seed, half::bf16::NAN)?;
    let t = std::time::Instant::now();
    let (out, reports) =
        att.run_once(&dev, &inputs.q, inputs.k.pool(), inputs.v.pool()).with_context(|| over_limit(a.max_seconds))?;
    let seconds = t.elapsed().as_secs_f64();
    let want = attnjoule::paged::reference::attention(&b, att.masks(), &inputs.q, inputs.k.pool(), inputs.v.pool())?;
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    let rel_l2 = reference::rel_l2(&got, &want.o);
    let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
    let insts: u64 = reports.iter().filter_map(|r| r.counters.as_ref()).map(thread_insts).sum();
    let findings: u64 = reports.iter().map(|r| r.findings_total).sum();
    let traffic = att.traffic();
    let (load, store, bulk) = reports
        .iter()
        .filter_map(|r| r.counters.as_ref())
        .fold((0, 0, 0), |s, c| (s.0 + c.global_load_bytes, s.1 + c.global_store_bytes, s.2 + c.bulk_load_bytes));
    if a.json {
        let v = serde_json::json!({
            "variant": "decode-paged",
            "batch": b,
            "mask": a.mask.to_string(),
            "seed": seed,
            "rel_l2": rel_l2,
            "lse_max_abs_err": lse_err,
            "lse_inf_rows_agree": inf_ok,
            "seconds": seconds,
            "thread_instructions": insts,
            "findings_total": findings,
            "plan": att.description(),
            "bytes": att.bytes(),
            "launches": reports,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!("decode-paged on {}", dev.name());
        outln!(
            "{} seqs (keys {}..{}), {} new tokens each, {} heads on {} KV heads, d {}, page {}, {} cache, mask {}, seed {seed}",
            b.num_seqs(),
            lengths.iter().min().unwrap_or(&0),
            lengths.iter().max().unwrap_or(&0),
            a.seq,
            a.heads,
            a.kv_heads,
            a.head_dim,
            a.page_size,
            a.kv_dtype,
            a.mask
        );
        outln!("plan: {}", att.description());
        outln!("rel L2 error {rel_l2:.3e} (limit 1e-2), LSE max abs error {lse_err:.3e} (-inf rows agree: {inf_ok})");
        outln!(
            "emulated in {seconds:.3} s: {insts} thread-instructions, {:.1} M thread-instructions/s",
            insts as f64 / seconds / 1e6
        );
        outln!(
            "global: read {load} B (bulk copies {bulk} B), wrote {store} B; the kernels' accounting: read {} B (bulk {} B), \
             wrote {} B; PagedBytes::total {:.0} B",
            traffic.loads,
            traffic.bulk_loads,
            traffic.stores,
            att.bytes().total()
        );
        outln!("sanitizer findings: {findings}");
        for (r, (k, _)) in reports.into_iter().zip(att.launches()?) {
            print_launch(&LaunchSummary { kernel: k.entry().to_string(), report: r }, a.counters, &|_| None);
        }
    }
    if rel_l2.is_nan() || rel_l2 > 1e-2 {
        return Err(anyhow!("rel L2 error {rel_l2:.3e} exceeds 1e-2"));
    }
    Ok(())
}

/// One launch's counters (with `counters`) and sanitizer findings, indented under the summary;
/// `source` gives the CUDA source line of a PTX line, when known.
pub(super) fn print_launch(l: &LaunchSummary, counters: bool, source: &dyn Fn(u32) -> Option<String>) {
    if counters {
        if let Some(c) = &l.report.counters {
            outln!("  {}:", l.kernel);
            outln!(
                "    instructions: arith {} memory {} tensor {} control {} sync {} (warp-level {})",
                c.inst_arith,
                c.inst_memory,
                c.inst_tensor,
                c.inst_control,
                c.inst_sync,
                c.warp_instructions
            );
            outln!(
                "    global: load {} B / {} sectors, store {} B / {} sectors",
                c.global_load_bytes,
                c.global_load_sectors,
                c.global_store_bytes,
                c.global_store_sectors
            );
            outln!(
                "    shared: {} requests, {} wavefronts, {} bank conflicts; ldmatrix {} ({} wavefronts)",
                c.shared_requests,
                c.shared_wavefronts,
                c.shared_bank_conflicts,
                c.ldmatrix_instructions,
                c.ldmatrix_wavefronts
            );
            outln!(
                "    mma {}, wgmma {} ({} tensor FLOPs), barriers {}",
                c.mma_instructions,
                c.wgmma_instructions,
                c.tensor_flops,
                c.barriers
            );
            outln!(
                "    async: TMA load {} B / store {} B, bulk load {} B / store {} B; mbarrier waits {}, \
                 named-barrier waits {}",
                c.tma_load_bytes,
                c.tma_store_bytes,
                c.bulk_load_bytes,
                c.bulk_store_bytes,
                c.mbarrier_waits,
                c.named_barrier_waits
            );
        }
    }
    for f in &l.report.findings {
        let at = source(f.ptx_line).map(|s| format!(" ({s})")).unwrap_or_default();
        outln!(
            "  finding {:?} in {} block {:?} thread {:?} PTX line {}{at} addr {:?}: {}",
            f.kind,
            f.kernel,
            f.block,
            f.thread,
            f.ptx_line,
            f.address,
            f.message
        );
    }
}

/// `--max-seconds` in 1 .. 86400.
pub(crate) fn check_max_seconds(max_seconds: f64) -> anyhow::Result<()> {
    if !(max_seconds.is_finite() && (1.0..=86400.0).contains(&max_seconds)) {
        bail!("--max-seconds must be in 1 .. 86400 seconds, got {max_seconds}");
    }
    Ok(())
}

/// The emulator of `emu` and `run-ptx`: the sanitizer unless turned off, counters on, a launch
/// stopped once `max_seconds` (checked) have passed from now.
pub(crate) fn emulator(no_sanitize: bool, threads: Option<usize>, max_seconds: f64) -> anyhow::Result<EmuDevice> {
    check_max_seconds(max_seconds)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(max_seconds);
    Ok(EmuDevice::with_options(EmuOptions {
        sanitize: !no_sanitize,
        counters: true,
        threads,
        deadline: Some(deadline),
    })?)
}

/// What a failed emulated run adds to its error.
fn over_limit(max_seconds: f64) -> String {
    format!("emulated run (limit --max-seconds {max_seconds}: a larger call may need more)")
}

#[cfg(test)]
mod tests {
    /// The published FNV-1a 64-bit test vectors.
    #[test]
    fn fnv1a64_vectors() {
        assert_eq!(super::fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a64(*b"foobar"), 0x8594_4171_f739_67e8);
    }
}

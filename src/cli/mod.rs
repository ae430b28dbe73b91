//! Subcommands, one file each: `Args` (clap) and `run`. Closed sets of choices are `ValueEnum`s
//! (their help lists them); mask recipes and shards parse with their library `FromStr`.

use clap::{Parser, Subcommand};

mod compare;
mod emu;
mod estimate;
mod gpu_run;
mod import_ncu;
mod info;
mod mask;
mod merge;
mod ncu;
pub mod out;
mod run_ptx;
mod sweep;

#[derive(Parser)]
#[command(name = "attnjoule", version, about = "Attention kernels for H100, measured in seconds and joules")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Toolchain, compiled kernels with their ptxas resources, and what this machine has (GPU, NVML).
    Info(info::Args),
    /// Run one attention variant on the CPU emulator: error vs the f64 reference, time, counters.
    Emu(emu::Args),
    /// Run one entry of any .ptx or .cu file on the CPU emulator, with the sanitizer and counters:
    /// run-ptx FILE --entry NAME --grid X[,Y[,Z]] --block X[,Y[,Z]] [--smem BYTES] --arg ARG ...
    /// (exit status 1: the launch failed; 2: sanitizer findings).
    RunPtx(run_ptx::Args),
    /// What a mask shows: visible pairs, flash tiles visited, a map of the plane (text or SVG),
    /// each row's visible keys (--json --rows).
    Mask(mask::Args),
    /// What the next phrase of a long conversation costs (s, J, Wh) per attention policy, from a
    /// profile (default: the bundled analytical H100 profile) and a model.
    Estimate(Box<estimate::Args>),
    /// Measure seconds and joules per call over variants x context sizes x phases (GPU), or run the
    /// same sweep on the CPU emulator (--backend emu: counters only).
    Sweep(Box<sweep::Args>),
    /// Join shard logs or profiles of one sweep into one profile (same GPU model and driver only).
    Merge(merge::Args),
    /// Ratios A / B of seconds and joules per call for every configuration both profiles measured.
    Compare(compare::Args),
    /// Warm up, then run one call inside a named NVTX range for `ncu --nvtx --nvtx-include`.
    Ncu(ncu::Args),
    /// Attach Nsight Compute metrics from an ncu CSV report to a profile point.
    ImportNcu(import_ncu::Args),
    /// The prepared run of scripts/gpu-run.sh on a lent GPU: its plan and time estimate (a dry
    /// run, no GPU needed), its steps, and the summary of a run's folder.
    GpuRun(gpu_run::Args),
}

/// An argument error in one line (clap's own spans several: usage, tips, "For more information").
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("For more information") || line.starts_with("Usage:") {
            continue;
        }
        parts.push(line);
    }
    parts.join(" ")
}

pub fn main() -> anyhow::Result<()> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help, --version: printed by the one rule too (clap's own print panics on a closed pipe).
        Err(e) if !e.use_stderr() => {
            out::out!("{}", e.render());
            let _ = out::finish();
            std::process::exit(e.exit_code());
        }
        // An argument error is a refusal like any other: one line, exit 1 (clap's own code is 2).
        Err(e) => {
            out::errln!("{}", one_line(&e));
            let _ = out::finish();
            std::process::exit(1);
        }
    };
    match cli.cmd {
        Cmd::Info(a) => info::run(a),
        Cmd::Emu(a) => emu::run(a),
        Cmd::RunPtx(a) => run_ptx::run(a),
        Cmd::Mask(a) => mask::run(a),
        Cmd::Estimate(a) => estimate::run(*a),
        Cmd::Sweep(a) => sweep::run(*a),
        Cmd::Merge(a) => merge::run(a),
        Cmd::Compare(a) => compare::run(a),
        Cmd::Ncu(a) => ncu::run(a),
        Cmd::ImportNcu(a) => import_ncu::run(a),
        Cmd::GpuRun(a) => gpu_run::run(a),
    }
}

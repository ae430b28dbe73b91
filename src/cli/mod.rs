//! Subcommands, one file each: `Args` (clap) and `run`.

use clap::{Parser, Subcommand};

mod emu;
mod estimate;
mod info;

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
    /// What the next phrase of a long conversation costs (s, J, Wh) per attention policy, from a
    /// profile (default: the bundled analytical H100 profile) and a model.
    Estimate(Box<estimate::Args>),
}

pub fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Info(a) => info::run(a),
        Cmd::Emu(a) => emu::run(a),
        Cmd::Estimate(a) => estimate::run(*a),
    }
}

//! `attnjoule info`

use crate::cli::out::outln;

use attnjoule::kernels::{MODULES, NVCC_PATH, NVCC_VERSION};

#[derive(clap::Args)]
pub struct Args {
    /// Also list the test-only kernels (unit tests, planted bugs).
    #[arg(long)]
    all: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    outln!("attnjoule {}", env!("CARGO_PKG_VERSION"));
    outln!("nvcc: {NVCC_PATH} ({NVCC_VERSION}), target sm_90a");
    match attnjoule::device::cuda::probe() {
        Ok(()) => outln!("CUDA driver: present"),
        // The probe's line already says what to use instead.
        Err(e) => outln!("CUDA: {e}"),
    }
    match nvml_wrapper::Nvml::init() {
        Ok(nvml) => outln!("NVML: present ({} device(s))", nvml.device_count().unwrap_or(0)),
        Err(e) => outln!("NVML: not available ({e}); energy cannot be measured on this machine"),
    }
    outln!();
    outln!(
        "{:<18} {:<36} {:>5} {:>9} {:>8} {:>7} {:>7} {:>6}",
        "module",
        "kernel",
        "regs",
        "roles",
        "s.smem",
        "stack",
        "spill",
        "bars"
    );
    for m in MODULES.iter().filter(|m| a.all || !m.test_only) {
        for e in m.entries {
            let roles = m
                .sass_of(e.name)
                .and_then(attnjoule::kernels::register_roles)
                .map_or("-".to_string(), |(producer, consumer)| format!("{producer}/{consumer}"));
            outln!(
                "{:<18} {:<36} {:>5} {:>9} {:>8} {:>7} {:>7} {:>6}",
                m.name,
                e.name,
                e.registers,
                roles,
                e.shared_bytes,
                e.stack_bytes,
                format!("{}/{}", e.spill_store_bytes, e.spill_load_bytes),
                e.barriers
            );
        }
    }
    outln!("regs: ptxas's allocation per thread at entry; roles: the setmaxnreg budgets of a warp-specialized kernel");
    outln!("(producer/consumer warpgroups), from its SASS");
    outln!("s.smem: static shared memory in bytes (dynamic shared memory is chosen per launch: `attnjoule emu` prints the plan)");
    Ok(())
}

//! Where nvcc is: the rules build.rs follows to compile the kernels (it includes this file with
//! `#[path]`) and the library follows to compile a `.cu` at run time (`kernels::compile_cu`), so
//! that both use the same pinned CUDA 13.0 compiler. Standard library only.
//!
//! nvcc is looked up in: $NVCC, $CUDA_HOME/bin, $CUDA_PATH/bin, PATH, the project's toolchain
//! cache ($ATTNJOULE_TOOLCHAIN_DIR, else $XDG_CACHE_HOME or ~/.cache, then attnjoule/cuda-13.0);
//! build.rs, failing all, runs `scripts/install-cuda-toolchain.sh` into the cache (opt out with
//! ATTNJOULE_NO_TOOLCHAIN_INSTALL=1).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The target of every kernel: an sm_90a cubin, and PTX for compute_90a.
pub const ARCH: &str = "-gencode=arch=compute_90a,code=sm_90a";
/// nvcc flags of every kernel (build.rs adds the crate's include directory).
pub const FLAGS: &[&str] = &["-O3", "-lineinfo", "-std=c++17"];
/// The environment variables the search reads.
pub const ENV: &[&str] = &[
    "NVCC",
    "CUDA_HOME",
    "CUDA_PATH",
    "PATH",
    "ATTNJOULE_NO_TOOLCHAIN_INSTALL",
    "ATTNJOULE_TOOLCHAIN_DIR",
    "XDG_CACHE_HOME",
];

/// The toolchain cache, where the install script puts the CUDA 13.0 wheels.
pub fn cache_prefix() -> PathBuf {
    if let Some(d) = env::var_os("ATTNJOULE_TOOLCHAIN_DIR") {
        return d.into();
    }
    let cache = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env::var("HOME").unwrap_or_default()).join(".cache"));
    cache.join("attnjoule/cuda-13.0")
}

/// nvcc by the rules above. `install`: when none is found (and the opt-out is not set), run the
/// install script; without it, the error says how to get one.
pub fn find_nvcc(install: bool) -> Result<PathBuf, String> {
    let exe = |p: PathBuf| p.is_file().then_some(p);
    if let Some(p) = env::var_os("NVCC") {
        return exe(PathBuf::from(&p)).ok_or_else(|| format!("NVCC={} is not a file", PathBuf::from(p).display()));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = env::var_os(var).and_then(|d| exe(PathBuf::from(d).join("bin/nvcc"))) {
            return Ok(p);
        }
    }
    if let Some(p) = env::var_os("PATH").and_then(|path| env::split_paths(&path).find_map(|d| exe(d.join("nvcc")))) {
        return Ok(p);
    }
    let cached = cache_prefix().join("nvidia/cu13/bin/nvcc");
    if cached.is_file() {
        return Ok(cached);
    }
    let opted_out = env::var_os("ATTNJOULE_NO_TOOLCHAIN_INSTALL").is_some_and(|v| v != "0");
    if !install || opted_out {
        return Err("nvcc not found (looked at $NVCC, $CUDA_HOME, $CUDA_PATH, PATH and the toolchain cache). \
                    Install CUDA 13.0, or run scripts/install-cuda-toolchain.sh, or unset ATTNJOULE_NO_TOOLCHAIN_INSTALL"
            .into());
    }
    let prefix = install_toolchain()?;
    exe(prefix.join("nvidia/cu13/bin/nvcc")).ok_or_else(|| "toolchain installed but nvcc is missing".into())
}

/// Runs the install script (into [`cache_prefix`]: it reads the same variables).
pub fn install_toolchain() -> Result<PathBuf, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-cuda-toolchain.sh");
    let mut c = Command::new("bash");
    c.arg(script);
    run_checked(&mut c)?;
    Ok(cache_prefix())
}

/// Runs a command; on failure returns its full command line and output. On success returns
/// stdout + stderr (ptxas -v writes to stderr).
pub fn run_checked(c: &mut Command) -> Result<String, String> {
    let o = c.output().map_err(|e| format!("cannot run {c:?}: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    if o.status.success() {
        Ok(text)
    } else {
        Err(format!("command failed ({}):\n  {c:?}\n{text}", o.status))
    }
}

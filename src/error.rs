//! Typed errors at the library boundary.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// A shape, layout, mask or parameter that cannot be run; the message names the problem.
    #[error("{0}")]
    Invalid(String),
    /// No CUDA driver, no GPU, or the driver refused: one line, with what to use instead.
    #[error("{0}")]
    NoGpu(String),
    #[error("CUDA error: {0}")]
    Cuda(String),
    #[error("NVML error: {0}")]
    Nvml(String),
    /// The emulator stopped a launch (unsupported instruction, fault); names the PTX line.
    #[error("emulator: {0}")]
    Emu(String),
    #[error("kernel not found: {0}")]
    KernelNotFound(String),
    /// The OS error is part of the message, not a `source()`: a chain printed with `{:#}` would
    /// repeat it.
    #[error("I/O error on {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("format error: {0}")]
    Format(String),
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

//! Typed errors at the library boundary.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// A shape, layout, mask or parameter that cannot be run; the message names the problem.
    #[error("invalid problem: {0}")]
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
    /// A backend that cannot run what was asked of it (names the backend and what is missing).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The OS error is part of the message, not a `source()`: a chain printed with `{:#}` would
    /// repeat it.
    #[error("I/O error on {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("format error: {0}")]
    Format(String),
    /// nvcc was not found, or failed on a `.cu` file (its command line and output).
    #[error("nvcc: {0}")]
    Toolchain(String),
    /// A tensor map description the device cannot encode (the rule it breaks).
    #[error("tensor map: {0}")]
    TensorMap(#[from] TensorMapError),
}

/// Why a tensor map description cannot be encoded (`device::tensor_map`: the rule of cuda.h it
/// breaks, or a feature the emulator does not model). Defined here, below `device`, so that
/// [`Error`] does not import `device`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TensorMapError {
    #[error("tensor rank {0} is not in 1..=5")]
    Rank(usize),
    #[error("an interleaved tensor map needs rank >= 3, not {0}")]
    InterleaveRank(usize),
    #[error("{what} has {got} values, the rank needs {want}")]
    Length { what: &'static str, got: usize, want: usize },
    #[error("global address {address:#x} is not {align}-byte aligned")]
    AddressAlignment { address: u64, align: u64 },
    #[error("dimension {dim} has size {size}, not in 1..=2^32")]
    Dim { dim: usize, size: u64 },
    #[error("stride of dimension {dim} is {stride} bytes: it must be a multiple of {align} and below 2^40")]
    Stride { dim: usize, stride: u64, align: u64 },
    #[error("box dimension {dim} is {size} elements, not in 1..=256")]
    BoxDim { dim: usize, size: u32 },
    #[error("the box's inner dimension is {bytes} bytes, not a multiple of 16")]
    BoxInnerBytes { bytes: u32 },
    #[error("element stride of dimension {dim} is {stride}, not in 1..=8")]
    ElementStride { dim: usize, stride: u32 },
    #[error("the box's inner dimension is {bytes} bytes, wider than the {span}-byte swizzle span")]
    SwizzleSpan { bytes: u32, span: u32 },
    #[error("a 32-byte interleave needs the 32-byte swizzle")]
    InterleaveSwizzle,
    #[error("OOB NaN fill needs a floating-point type, not {0}")]
    NanFillType(String),
    /// A description the driver accepts but the emulator does not model (the message says what).
    #[error("not modelled by the emulator: {0}")]
    NotModelled(String),
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

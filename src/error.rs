//! Typed errors at the library boundary. Every message is shown as one line: control characters
//! that a hostile input brings into it (a newline in a path, a mutated PTX statement) are shown
//! escaped ([`one_line`]).

use std::borrow::Cow;
use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// A shape, layout, mask or parameter that cannot be run, or an argument out of its range;
    /// the message names it.
    #[error("{}", one_line(.0))]
    Invalid(String),
    /// No CUDA driver, no GPU, or the driver refused: one line, with what to use instead.
    #[error("{}", one_line(.0))]
    NoGpu(String),
    #[error("CUDA error: {}", one_line(.0))]
    Cuda(String),
    #[error("NVML error: {}", one_line(.0))]
    Nvml(String),
    /// The emulator stopped a launch (unsupported instruction, fault); names the PTX line.
    #[error("emulator: {}", one_line(.0))]
    Emu(String),
    #[error("kernel not found: {}", one_line(.0))]
    KernelNotFound(String),
    /// A backend that cannot run what was asked of it (names the backend and what is missing).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The OS error is part of the message, not a `source()`: a chain printed with `{:#}` would
    /// repeat it.
    #[error("I/O error on {}: {err}", one_line(path))]
    Io { path: String, err: std::io::Error },
    #[error("format error: {}", one_line(.0))]
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

/// `s` with its control characters (newlines, tabs, NUL, ...) escaped as Rust writes them in a
/// string, so that a message stays one line whatever input it quotes.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = Error::Io { path: "a\nb".into(), err: std::io::Error::from(std::io::ErrorKind::NotFound) };
        assert_eq!(e.to_string().lines().count(), 1);
        assert!(e.to_string().starts_with("I/O error on a\\nb: "), "{e}");
        assert_eq!(Error::Invalid("tab\there".into()).to_string(), "tab\\there");
        assert_eq!(one_line("plain é"), "plain é");
    }
}

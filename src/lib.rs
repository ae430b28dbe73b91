//! attnjoule: hand-written CUDA attention kernels for H100 (sm_90a), proven on a CPU emulator that
//! executes the PTX nvcc produced, and measured in seconds and joules per call.
//!
//! Modules, one concept each (see docs/ARCHITECTURE.md):
//! - [`problem`], [`mask`]: shapes, layouts and masks; [`work`]: FLOPs and minimum bytes.
//! - [`reference`]: f64 CPU attention, the ground truth.
//! - [`kernels`]: the nvcc-compiled modules embedded by build.rs, and PTX loaded at run time;
//!   [`params`]: the shared struct; [`toolchain`]: where nvcc is.
//! - [`device`]: one interface, two backends (CUDA via cudarc, and [`emu`], the PTX emulator).
//! - [`ops`]: launching each attention variant on any device (`ops::fp8`: flash-hopper-fp8's inputs).
//! - [`paged`]: serving decode: a ragged batch over a paged bf16 or fp8 cache, its reference and
//!   its split-KV plan.
//! - [`files`]: whole files written atomically, bounded reads, output-is-input refusal, folder locks.

// The library never prints: the binary's one printing rule (src/cli/out.rs) owns the terminal.
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod device;
pub mod emu;
pub mod energy;
pub mod error;
pub mod estimate;
pub mod files;
pub mod kernels;
pub mod mask;
pub mod nvtx;
pub mod ops;
pub mod paged;
pub mod params;
pub mod plot;
pub mod problem;
pub mod profile;
pub mod reference;
pub mod sweep;
pub mod toolchain;
pub mod work;

pub use error::{Error, Result};
pub use mask::{BlockLayout, Mask};
pub use problem::{Dtype, Problem, Shape};

//! The CUDA backend (placeholder until the CUDA issue lands): probes for the driver first.

use super::*;
use crate::Error;

/// Probes for libcuda without letting cudarc panic.
pub fn probe() -> std::result::Result<(), String> {
    Err("no CUDA driver found (libcuda.so is not loadable)".into())
}

pub struct CudaDevice;

impl CudaDevice {
    pub fn new(_ordinal: usize) -> Result<Self> {
        Err(Error::NoGpu(probe().unwrap_err()))
    }
}

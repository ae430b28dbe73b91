//! Launching each attention variant on any [`crate::device::Device`]: shape checks, parameter
//! struct, grid and block, then the unsafe-free launch through the device interface.

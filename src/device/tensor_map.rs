//! Tensor maps: what a Hopper kernel's TMA copies read. A [`TensorMapSpec`] is the typed
//! description the host builds (element type, dims, strides, box, swizzle, out-of-bounds fill);
//! [`Device::encode_tensor_map`](super::Device::encode_tensor_map) turns it into the opaque
//! 128 bytes a kernel takes as a `const __grid_constant__ CUtensorMap` parameter. The CUDA
//! backend calls the driver's `cuTensorMapEncodeTiled`; the emulator validates the same rules
//! ([`TensorMapSpec::validate`]) and writes its own encoding.

use crate::error::{Error, Result};

/// What one element of the tensor is, as the copy engine sees it (e4m3 travels as `U8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorMapElem {
    U8,
    U16,
    Bf16,
    F16,
    F32,
}

impl TensorMapElem {
    pub fn bytes(self) -> usize {
        match self {
            TensorMapElem::U8 => 1,
            TensorMapElem::U16 | TensorMapElem::Bf16 | TensorMapElem::F16 => 2,
            TensorMapElem::F32 => 4,
        }
    }
    fn is_float(self) -> bool {
        matches!(self, TensorMapElem::Bf16 | TensorMapElem::F16 | TensorMapElem::F32)
    }
}

/// The shared-memory swizzle the copy applies: 16-byte chunk c of a box row goes to chunk
/// c XOR (address bits above the span), as wgmma's descriptors of the same mode expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorMapSwizzle {
    None,
    B32,
    B64,
    B128,
}

impl TensorMapSwizzle {
    /// The swizzle span in bytes (the most a box row may hold); None: no limit from the swizzle.
    pub fn span_bytes(self) -> Option<usize> {
        match self {
            TensorMapSwizzle::None => None,
            TensorMapSwizzle::B32 => Some(32),
            TensorMapSwizzle::B64 => Some(64),
            TensorMapSwizzle::B128 => Some(128),
        }
    }
}

/// What a load writes for elements outside the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorMapFill {
    /// Zeros (the driver's CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE).
    Zero,
    /// NaN, so that a computation that should have masked them shows it (float types only).
    Nan,
}

/// A tiled tensor map: a tensor of up to five dimensions in global memory and the box one copy
/// moves. Dimensions are innermost first; `strides[i]` is the byte distance between consecutive
/// indices of dimension `i + 1` (the innermost is contiguous).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorMapSpec {
    pub elem: TensorMapElem,
    /// Global address of element (0, .., 0).
    pub addr: u64,
    pub dims: Vec<u64>,
    pub strides: Vec<u64>,
    pub box_dims: Vec<u32>,
    pub swizzle: TensorMapSwizzle,
    pub fill: TensorMapFill,
}

/// An encoded tensor map: the kernel parameter's 128 bytes (64-byte aligned, as CUtensorMap).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct TensorMap(pub [u8; 128]);

impl std::fmt::Debug for TensorMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TensorMap({:02x?}..)", &self.0[..8])
    }
}

impl TensorMap {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl TensorMapSpec {
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The rules `cuTensorMapEncodeTiled` enforces for a tiled map without interleave and with
    /// unit element strides (cuda.h, CUDA 13.0), as a typed error naming the broken one.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Invalid(format!("tensor map: {what}")));
        let r = self.rank();
        if !(1..=5).contains(&r) {
            return bad(format!("rank {r} (1 to 5 dimensions)"));
        }
        if self.strides.len() != r - 1 || self.box_dims.len() != r {
            return bad(format!(
                "{} dims need {} strides and {} box sizes, got {} and {}",
                r,
                r - 1,
                r,
                self.strides.len(),
                self.box_dims.len()
            ));
        }
        if !self.addr.is_multiple_of(16) {
            return bad(format!("global address {:#x} is not 16-byte aligned", self.addr));
        }
        for (i, &d) in self.dims.iter().enumerate() {
            if d == 0 || d > 1 << 32 {
                return bad(format!("dimension {i} has {d} elements (1 to 2^32)"));
            }
        }
        for (i, &s) in self.strides.iter().enumerate() {
            if !s.is_multiple_of(16) || s >= 1 << 40 {
                return bad(format!("stride of dimension {} is {s} bytes (a multiple of 16 below 2^40)", i + 1));
            }
        }
        for (i, &b) in self.box_dims.iter().enumerate() {
            if b == 0 || b > 256 {
                return bad(format!("box dimension {i} is {b} (1 to 256)"));
            }
        }
        let inner = self.box_dims[0] as usize * self.elem.bytes();
        if !inner.is_multiple_of(16) {
            return bad(format!("the box's inner dimension is {inner} bytes (a multiple of 16)"));
        }
        if let Some(span) = self.swizzle.span_bytes() {
            if inner > span {
                return bad(format!(
                    "the box's inner dimension is {inner} bytes, more than the {span}-byte swizzle span"
                ));
            }
        }
        if self.fill == TensorMapFill::Nan && !self.elem.is_float() {
            return bad(format!("NaN fill needs a float element type, not {:?}", self.elem));
        }
        Ok(())
    }

    /// Bytes one box occupies in shared memory (what a load completes on its mbarrier).
    pub fn box_bytes(&self) -> usize {
        self.box_dims.iter().map(|&b| b as usize).product::<usize>() * self.elem.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TensorMapSpec {
        // BSHD bf16 Q of 4 heads x 128: dims (d, seq, heads, batch), 64-column boxes of 128 rows.
        TensorMapSpec {
            elem: TensorMapElem::Bf16,
            addr: 0x1000,
            dims: vec![128, 1000, 4, 2],
            strides: vec![4 * 128 * 2, 128 * 2, 1000 * 4 * 128 * 2],
            box_dims: vec![64, 128, 1, 1],
            swizzle: TensorMapSwizzle::B128,
            fill: TensorMapFill::Zero,
        }
    }

    #[test]
    fn the_driver_rules() {
        spec().validate().unwrap();
        assert_eq!(spec().box_bytes(), 64 * 128 * 2);
        type Break = Box<dyn Fn(&mut TensorMapSpec)>;
        let broken: Vec<(&str, Break)> = vec![
            ("aligned", Box::new(|s| s.addr += 8)),
            ("multiple of 16", Box::new(|s| s.strides[0] = 1000)),
            ("1 to 256", Box::new(|s| s.box_dims[1] = 257)),
            ("swizzle span", Box::new(|s| s.box_dims[0] = 128)),
            ("1 to 2^32", Box::new(|s| s.dims[1] = 0)),
            ("rank", Box::new(|s| s.dims = vec![1; 6])),
            ("strides", Box::new(|s| s.strides.pop().map(|_| ()).unwrap_or(()))),
            ("inner dimension", Box::new(|s| s.box_dims[0] = 4)),
            ("NaN fill", Box::new(|s| (s.elem, s.fill) = (TensorMapElem::U8, TensorMapFill::Nan))),
        ];
        for (want, f) in broken {
            let mut s = spec();
            f(&mut s);
            match s.validate() {
                Err(Error::Invalid(m)) => assert!(m.contains(want), "{want}: {m}"),
                other => panic!("{want}: {other:?}"),
            }
        }
    }
}

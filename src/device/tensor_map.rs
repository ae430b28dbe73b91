//! Tensor maps (TMA descriptors): a typed description of a tiled tensor in global memory and of
//! the box a `cp.async.bulk.tensor` copies, checked against the rules `cuTensorMapEncodeTiled`
//! documents (cuda.h, CUDA 13.0), and the opaque 128-byte value a kernel receives as a
//! `const __grid_constant__ CUtensorMap` parameter.
//!
//! The CUDA backend encodes with the driver; the emulator writes its own tagged encoding
//! (`emu::tensor_map`). Both check the description with [`TensorMapSpec::validate`] first, so a
//! bad description fails the same way on either device.

pub use crate::error::TensorMapError;

/// Element type of a tensor map (`CUtensorMapDataType`, the byte-sized ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorMapElem {
    U8,
    U16,
    U32,
    I32,
    U64,
    I64,
    F16,
    F32,
    F64,
    Bf16,
    F32Ftz,
    Tf32,
    Tf32Ftz,
}

impl TensorMapElem {
    pub fn bytes(self) -> usize {
        match self {
            TensorMapElem::U8 => 1,
            TensorMapElem::U16 | TensorMapElem::F16 | TensorMapElem::Bf16 => 2,
            TensorMapElem::U32 | TensorMapElem::I32 | TensorMapElem::F32 | TensorMapElem::F32Ftz => 4,
            TensorMapElem::Tf32 | TensorMapElem::Tf32Ftz => 4,
            TensorMapElem::U64 | TensorMapElem::I64 | TensorMapElem::F64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        !matches!(
            self,
            TensorMapElem::U8
                | TensorMapElem::U16
                | TensorMapElem::U32
                | TensorMapElem::I32
                | TensorMapElem::U64
                | TensorMapElem::I64
        )
    }
    /// The `CUtensorMapDataType` value.
    pub fn cuda(self) -> u32 {
        match self {
            TensorMapElem::U8 => 0,
            TensorMapElem::U16 => 1,
            TensorMapElem::U32 => 2,
            TensorMapElem::I32 => 3,
            TensorMapElem::U64 => 4,
            TensorMapElem::I64 => 5,
            TensorMapElem::F16 => 6,
            TensorMapElem::F32 => 7,
            TensorMapElem::F64 => 8,
            TensorMapElem::Bf16 => 9,
            TensorMapElem::F32Ftz => 10,
            TensorMapElem::Tf32 => 11,
            TensorMapElem::Tf32Ftz => 12,
        }
    }
    /// Every type, in `CUtensorMapDataType` order.
    pub const ALL: [TensorMapElem; 13] = [
        TensorMapElem::U8,
        TensorMapElem::U16,
        TensorMapElem::U32,
        TensorMapElem::I32,
        TensorMapElem::U64,
        TensorMapElem::I64,
        TensorMapElem::F16,
        TensorMapElem::F32,
        TensorMapElem::F64,
        TensorMapElem::Bf16,
        TensorMapElem::F32Ftz,
        TensorMapElem::Tf32,
        TensorMapElem::Tf32Ftz,
    ];
}

/// `CUtensorMapInterleave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Interleave {
    #[default]
    None,
    B16,
    B32,
}

/// `CUtensorMapSwizzle`: how 16-byte chunks are permuted in shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TensorMapSwizzle {
    #[default]
    None,
    B32,
    B64,
    B128,
    /// 128-byte swizzle of 32-byte atoms.
    B128Atom32,
    /// 128-byte swizzle of 32-byte atoms, the 8-byte halves of every other row flipped.
    B128Atom32Flip8,
    /// 128-byte swizzle of 64-byte atoms.
    B128Atom64,
}

impl TensorMapSwizzle {
    /// The swizzle span in bytes: the most a box row may hold (None: no swizzle).
    pub fn span_bytes(self) -> Option<usize> {
        (self != TensorMapSwizzle::None).then_some(self.span() as usize)
    }
    /// The swizzle span in bytes (0: none).
    pub fn span(self) -> u32 {
        match self {
            TensorMapSwizzle::None => 0,
            TensorMapSwizzle::B32 => 32,
            TensorMapSwizzle::B64 => 64,
            _ => 128,
        }
    }
    /// The `CUtensorMapSwizzle` value.
    pub fn cuda(self) -> u32 {
        match self {
            TensorMapSwizzle::None => 0,
            TensorMapSwizzle::B32 => 1,
            TensorMapSwizzle::B64 => 2,
            TensorMapSwizzle::B128 => 3,
            TensorMapSwizzle::B128Atom32 => 4,
            TensorMapSwizzle::B128Atom32Flip8 => 5,
            TensorMapSwizzle::B128Atom64 => 6,
        }
    }
}

/// `CUtensorMapL2promotion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum L2Promotion {
    #[default]
    None,
    B64,
    B128,
    B256,
}

/// `CUtensorMapFloatOOBfill`: what out-of-bounds elements of a box load read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TensorMapFill {
    /// Zero.
    #[default]
    Zero,
    /// A special NaN that requests zero in FMA (`CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA`;
    /// floating-point types only): a computation that should have masked them shows it.
    Nan,
}

/// A tiled tensor map: the tensor (element type, dimensions innermost first, byte strides of
/// dimensions 1.., base address) and the box copied per instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMapSpec {
    pub elem: TensorMapElem,
    /// Device address of element (0, ..., 0) (`DevBuf::addr` plus an offset).
    pub addr: u64,
    /// Elements along each dimension, innermost first (rank = its length, 1..=5).
    pub dims: Vec<u64>,
    /// Byte stride of dimensions 1..rank (rank - 1 values).
    pub strides: Vec<u64>,
    /// Box size in elements along each dimension.
    pub box_dims: Vec<u32>,
    /// Traversal stride along each dimension (1: every element; dimension 0's is ignored).
    pub element_strides: Vec<u32>,
    pub interleave: Interleave,
    pub swizzle: TensorMapSwizzle,
    pub l2_promotion: L2Promotion,
    pub fill: TensorMapFill,
}

impl TensorMapSpec {
    /// A row-major tensor of `dims` (innermost first) with packed strides, unit element strides,
    /// no interleave, no L2 promotion, zero fill.
    pub fn packed(elem: TensorMapElem, addr: u64, dims: &[u64], box_dims: &[u32], swizzle: TensorMapSwizzle) -> Self {
        let mut strides = Vec::new();
        let mut s = elem.bytes() as u64;
        for d in dims.iter().take(dims.len().saturating_sub(1)) {
            s *= d;
            strides.push(s);
        }
        TensorMapSpec {
            elem,
            addr,
            dims: dims.to_vec(),
            strides,
            box_dims: box_dims.to_vec(),
            element_strides: vec![1; dims.len()],
            interleave: Interleave::None,
            swizzle,
            l2_promotion: L2Promotion::None,
            fill: TensorMapFill::Zero,
        }
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// Elements the box holds along dimension `d` in shared memory: `ceil(box / element stride)`
    /// (dimension 0 ignores its element stride without interleave).
    pub fn box_elems(&self, d: usize) -> u32 {
        if d == 0 && self.interleave == Interleave::None {
            self.box_dims[0]
        } else {
            self.box_dims[d].div_ceil(self.element_strides[d])
        }
    }

    /// Bytes one box occupies in shared memory (and the transaction bytes of one load).
    pub fn box_bytes(&self) -> usize {
        (0..self.rank()).map(|d| self.box_elems(d) as usize).product::<usize>() * self.elem.bytes()
    }

    /// The rules `cuTensorMapEncodeTiled` documents (cuda.h, CUDA 13.0) for the byte-sized types.
    pub fn validate(&self) -> Result<(), TensorMapError> {
        use TensorMapError as E;
        let r = self.rank();
        if r == 0 || r > 5 {
            return Err(E::Rank(r));
        }
        if self.interleave != Interleave::None && r < 3 {
            return Err(E::InterleaveRank(r));
        }
        let lens = [
            ("strides", self.strides.len(), r - 1),
            ("box_dims", self.box_dims.len(), r),
            ("element_strides", self.element_strides.len(), r),
        ];
        for (what, got, want) in lens {
            if got != want {
                return Err(E::Length { what, got, want });
            }
        }
        let align = if self.interleave == Interleave::B32 { 32 } else { 16 };
        if !self.addr.is_multiple_of(align) {
            return Err(E::AddressAlignment { address: self.addr, align });
        }
        for (d, &n) in self.dims.iter().enumerate() {
            if n == 0 || n > 1 << 32 {
                return Err(E::Dim { dim: d, size: n });
            }
        }
        let salign = if self.interleave == Interleave::B32 { 32 } else { 16 };
        for (i, &s) in self.strides.iter().enumerate() {
            if s % salign != 0 || s >= 1 << 40 {
                return Err(E::Stride { dim: i + 1, stride: s, align: salign });
            }
        }
        let esize = self.elem.bytes();
        for (d, &b) in self.box_dims.iter().enumerate() {
            if b == 0 || b > 256 {
                return Err(E::BoxDim { dim: d, size: b });
            }
        }
        let inner = self.box_dims[0] * esize as u32;
        if self.interleave == Interleave::None && !inner.is_multiple_of(16) {
            return Err(E::BoxInnerBytes { bytes: inner });
        }
        for (d, &e) in self.element_strides.iter().enumerate() {
            if e == 0 || e > 8 {
                return Err(E::ElementStride { dim: d, stride: e });
            }
        }
        if self.interleave == Interleave::None && self.swizzle != TensorMapSwizzle::None && inner > self.swizzle.span()
        {
            return Err(E::SwizzleSpan { bytes: inner, span: self.swizzle.span() });
        }
        if self.interleave == Interleave::B32 && self.swizzle != TensorMapSwizzle::B32 {
            return Err(E::InterleaveSwizzle);
        }
        if self.fill == TensorMapFill::Nan && !self.elem.is_float() {
            return Err(E::NanFillType(format!("{:?}", self.elem)));
        }
        Ok(())
    }
}

/// An encoded tensor map: the opaque 128-byte, 64-byte-aligned value a kernel receives by value
/// (pass [`TensorMap::as_bytes`] as the kernel argument).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(128))]
pub struct TensorMap(pub [u8; 128]);

impl TensorMap {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for TensorMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TensorMap({:02x?}..)", &self.0[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TensorMapSpec {
        TensorMapSpec::packed(TensorMapElem::Bf16, 0x1_0000_0000, &[128, 64, 3], &[64, 32, 1], TensorMapSwizzle::B128)
    }

    #[test]
    fn driver_rules() {
        assert_eq!(spec().validate(), Ok(()));
        assert_eq!(spec().box_bytes(), 64 * 32 * 2);
        let bad = |f: &dyn Fn(&mut TensorMapSpec)| {
            let mut s = spec();
            f(&mut s);
            s.validate().expect_err("must be refused")
        };
        assert_eq!(bad(&|s| s.addr += 8), TensorMapError::AddressAlignment { address: 0x1_0000_0008, align: 16 });
        assert!(matches!(bad(&|s| s.strides[0] = 24), TensorMapError::Stride { dim: 1, .. }));
        assert!(matches!(bad(&|s| s.strides[1] = 1 << 40), TensorMapError::Stride { dim: 2, .. }));
        assert!(matches!(bad(&|s| s.box_dims[1] = 257), TensorMapError::BoxDim { dim: 1, size: 257 }));
        assert!(matches!(bad(&|s| s.box_dims[0] = 4), TensorMapError::BoxInnerBytes { bytes: 8 }));
        assert!(matches!(bad(&|s| s.box_dims[0] = 72), TensorMapError::SwizzleSpan { bytes: 144, span: 128 }));
        assert!(matches!(bad(&|s| s.element_strides[2] = 9), TensorMapError::ElementStride { dim: 2, stride: 9 }));
        assert!(matches!(bad(&|s| s.dims[1] = 0), TensorMapError::Dim { dim: 1, size: 0 }));
        assert!(matches!(bad(&|s| s.dims.push(1)), TensorMapError::Length { .. }));
        assert!(matches!(
            bad(&|s| {
                s.elem = TensorMapElem::U16;
                s.fill = TensorMapFill::Nan
            }),
            TensorMapError::NanFillType(ref t) if t == "U16"
        ));
        let mut six = spec();
        six.dims = vec![16; 6];
        assert_eq!(six.validate(), Err(TensorMapError::Rank(6)));
        let mut es = spec();
        es.element_strides = vec![1, 3, 1];
        assert_eq!(es.box_elems(1), 11);
        assert_eq!(std::mem::align_of::<TensorMap>() % 64, 0);
    }
}

//! The warp-level matrix fragments of `wmma` (PTX ISA 9.7.14, "Warp-level Matrix Multiply-Accumulate
//! Instructions": wmma.load, wmma.store, wmma.mma), shared by lowering and execution.
//!
//! Which lane holds which matrix element is implementation-defined (PTX ISA 9.7.14.4.1: "the
//! layout of the fragments held by different threads is unspecified"); a correct program only
//! moves fragments between wmma instructions and applies the same operation to every element.
//! The emulator's layout: a fragment of an R x C matrix with n elements per lane holds, at lane
//! `l` element `e` (register `e / 2`, low half first, for 16-bit types), the element of index
//! `(l * n + e) mod (R * C)` of the matrix in row-major order, whatever the memory layout
//! (`.row`/`.col`) it was loaded from. Where 32 * n exceeds R * C (f16 A and B fragments, which
//! have 8 registers in every shape), each element is held by several lanes; wmma.mma reads the
//! first copy.

use super::Ty;

/// The matrix a fragment holds: A (M x K), B (K x N), C or D (M x N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WmmaFrag {
    A,
    B,
    C,
    D,
}

/// The shapes of the f16 and bf16 forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WmmaShape {
    M16N16K16,
    M32N8K16,
    M8N32K16,
}

impl WmmaShape {
    pub fn parse(s: &str) -> Option<WmmaShape> {
        Some(match s {
            "m16n16k16" => WmmaShape::M16N16K16,
            "m32n8k16" => WmmaShape::M32N8K16,
            "m8n32k16" => WmmaShape::M8N32K16,
            _ => return None,
        })
    }
    /// (M, N, K).
    pub fn mnk(self) -> (usize, usize, usize) {
        match self {
            WmmaShape::M16N16K16 => (16, 16, 16),
            WmmaShape::M32N8K16 => (32, 8, 16),
            WmmaShape::M8N32K16 => (8, 32, 16),
        }
    }
}

/// Rows and columns of the matrix a fragment holds.
pub fn wmma_dims(frag: WmmaFrag, shape: WmmaShape) -> (usize, usize) {
    let (m, n, k) = shape.mnk();
    match frag {
        WmmaFrag::A => (m, k),
        WmmaFrag::B => (k, n),
        WmmaFrag::C | WmmaFrag::D => (m, n),
    }
}

/// 32-bit registers per lane of a fragment of element type `ty` (PTX ISA 9.7.14.4.1: f16 A and B
/// fragments are eight .f16x2 registers; bf16 ones hold exactly their elements; f16 C/D four
/// .f16x2, f32 C/D eight .f32).
pub fn wmma_regs(frag: WmmaFrag, shape: WmmaShape, ty: Ty) -> usize {
    match (frag, ty) {
        (WmmaFrag::A | WmmaFrag::B, Ty::F16) => 8,
        (WmmaFrag::A | WmmaFrag::B, _) => {
            let (r, c) = wmma_dims(frag, shape);
            r * c / 64
        }
        (_, Ty::F16) => 4,
        _ => 8,
    }
}

/// Elements per register: two 16-bit values (low half first) or one f32.
pub fn wmma_per_reg(ty: Ty) -> usize {
    if ty == Ty::F32 {
        1
    } else {
        2
    }
}

/// The (row, column) of the matrix that element `e` of `lane`'s fragment holds.
#[inline]
pub fn wmma_elem(frag: WmmaFrag, shape: WmmaShape, ty: Ty, lane: usize, e: usize) -> (usize, usize) {
    let (rows, cols) = wmma_dims(frag, shape);
    let n = wmma_regs(frag, shape, ty) * wmma_per_reg(ty);
    let idx = (lane * n + e) % (rows * cols);
    (idx / cols, idx % cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fragment covers its whole matrix, each element the same number of times.
    #[test]
    fn fragments_cover_their_matrices() {
        for shape in [WmmaShape::M16N16K16, WmmaShape::M32N8K16, WmmaShape::M8N32K16] {
            for (frag, ty) in [
                (WmmaFrag::A, Ty::F16),
                (WmmaFrag::B, Ty::F16),
                (WmmaFrag::A, Ty::Bf16),
                (WmmaFrag::B, Ty::Bf16),
                (WmmaFrag::C, Ty::F16),
                (WmmaFrag::C, Ty::F32),
            ] {
                let (r, c) = wmma_dims(frag, shape);
                let n = wmma_regs(frag, shape, ty) * wmma_per_reg(ty);
                let mut seen = vec![0; r * c];
                for lane in 0..32 {
                    for e in 0..n {
                        let (i, j) = wmma_elem(frag, shape, ty, lane, e);
                        seen[i * c + j] += 1;
                    }
                }
                assert!((32 * n).is_multiple_of(r * c), "{frag:?} {shape:?} {ty:?}");
                assert!(seen.iter().all(|&x| x == 32 * n / (r * c)), "{frag:?} {shape:?} {ty:?}");
            }
        }
    }
}

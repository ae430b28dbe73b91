//! An independent host model of wgmma, written from the PTX ISA's description (9.7.15.5.1.1
//! register fragments, 9.7.15.5.1.2 shared-memory layouts and the matrix descriptor), in the
//! CuTe form the manual uses, not from the emulator's code: operand types, the canonical
//! shared-memory layouts with their swizzle, the descriptor bits, the fragment layouts, and the
//! expected D.
#![allow(dead_code)]

use half::{bf16, f16};

/// A wgmma operand element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Bf16,
    F16,
    E4m3,
    E5m2,
}

impl Elem {
    pub fn bytes(self) -> u32 {
        match self {
            Elem::Bf16 | Elem::F16 => 2,
            _ => 1,
        }
    }
    pub fn ptx(self) -> &'static str {
        match self {
            Elem::Bf16 => "bf16",
            Elem::F16 => "f16",
            Elem::E4m3 => "e4m3",
            Elem::E5m2 => "e5m2",
        }
    }
    /// The value of `bits`.
    pub fn value(self, bits: u32) -> f64 {
        match self {
            Elem::Bf16 => bf16::from_bits(bits as u16).to_f64(),
            Elem::F16 => f16::from_bits(bits as u16).to_f64(),
            Elem::E4m3 => fp8_value(bits as u8, Fp8::E4m3),
            Elem::E5m2 => fp8_value(bits as u8, Fp8::E5m2),
        }
    }
    /// The bits of `x`, which must be exactly representable (test data is chosen so).
    pub fn bits(self, x: f64) -> u32 {
        let b = match self {
            Elem::Bf16 => bf16::from_f64(x).to_bits() as u32,
            Elem::F16 => f16::from_f64(x).to_bits() as u32,
            Elem::E4m3 => fp8_code(x, Fp8::E4m3),
            Elem::E5m2 => fp8_code(x, Fp8::E5m2),
        };
        assert_eq!(self.value(b), x, "{x} is not exact in {self:?}");
        b
    }
}

/// The code of an exactly representable fp8 value (by a table of every code's value).
fn fp8_code(x: f64, t: Fp8) -> u32 {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static TABLES: OnceLock<[HashMap<u64, u32>; 2]> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        [Fp8::E4m3, Fp8::E5m2].map(|t| (0..=255u32).rev().map(|c| (fp8_value(c as u8, t).to_bits(), c)).collect())
    });
    *tables[(t == Fp8::E5m2) as usize].get(&x.to_bits()).unwrap_or_else(|| panic!("{x} is not an {t:?} value"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fp8 {
    E4m3,
    E5m2,
}

/// The value of an fp8 code by the OCP definitions: E4M3 (bias 7, no infinities, S.1111.111 is
/// NaN), E5M2 (bias 15, IEEE-style infinities and NaNs).
pub fn fp8_value(c: u8, t: Fp8) -> f64 {
    let (ebits, mbits, bias) = match t {
        Fp8::E4m3 => (4, 3, 7),
        Fp8::E5m2 => (5, 2, 15),
    };
    let s = if c & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((c >> mbits) & ((1 << ebits) - 1)) as i32;
    let m = (c & ((1 << mbits) - 1)) as f64;
    let emax = (1 << ebits) - 1;
    match t {
        Fp8::E4m3 if e == emax && m == 7.0 => return f64::NAN,
        Fp8::E5m2 if e == emax => return if m == 0.0 { s * f64::INFINITY } else { f64::NAN },
        _ => {}
    }
    let frac = m / (1 << mbits) as f64;
    if e == 0 {
        s * frac * 2f64.powi(1 - bias)
    } else {
        s * (1.0 + frac) * 2f64.powi(e - bias)
    }
}

/// A shared-memory operand layout: K-major or MN-major, swizzle span (0, 32, 64, 128 bytes), the
/// leading and stride byte offsets, and the start address (relative to a 1024-aligned base).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub k_major: bool,
    pub swizzle: u32,
    pub lbo: u32,
    pub sbo: u32,
    pub start: u32,
}

impl Layout {
    /// Byte offset of element (x along M/N, y along K) before the swizzle, evaluating the PTX
    /// ISA's canonical layouts (9.7.15.5.1.2.1.3) term by term, in elements (T per 16 bytes):
    ///   MN-major, none:   ((T,1,m),(8,k)) : ((1,T,SBO),(1T,LBO))
    ///   MN-major, swizzle with S = span/16: ((T,S,m),(8,k)) : ((1,T,LBO),(S*T,SBO))
    ///   K-major, none:    ((8,m),(T,2k)) : ((1T,SBO),(1,LBO))
    ///   K-major, swizzle: ((8,m),(T,2k)) : ((S*T,SBO),(1,T))
    pub fn offset(&self, e: Elem, x: u32, y: u32) -> u32 {
        let t = 16 / e.bytes();
        let (lbo, sbo) = (self.lbo / e.bytes(), self.sbo / e.bytes());
        let s = self.swizzle / 16;
        // A coordinate split over a mode's shape, dotted with its strides.
        let dot = |c: u32, shape: &[u32], stride: &[u32]| {
            let mut c = c;
            let mut o = 0;
            for (i, (&sh, &st)) in shape.iter().zip(stride).enumerate() {
                let last = i + 1 == shape.len();
                let v = if last { c } else { c % sh };
                o += v * st;
                c /= sh;
            }
            o
        };
        let el = match (self.k_major, self.swizzle) {
            (false, 0) => dot(x, &[t, 1, u32::MAX], &[1, t, sbo]) + dot(y, &[8, u32::MAX], &[t, lbo]),
            (false, _) => dot(x, &[t, s, u32::MAX], &[1, t, lbo]) + dot(y, &[8, u32::MAX], &[s * t, sbo]),
            (true, 0) => dot(x, &[8, u32::MAX], &[t, sbo]) + dot(y, &[t, u32::MAX], &[1, lbo]),
            (true, _) => dot(x, &[8, u32::MAX], &[s * t, sbo]) + dot(y, &[t, u32::MAX], &[1, t]),
        };
        el * e.bytes()
    }
    /// The byte address of element (x, y): Swizzle<B,4,3> (B = log2(span/16)) of start + offset,
    /// i.e. address bits [4, 4+B) XOR bits [7, 7+B).
    pub fn addr(&self, e: Elem, x: u32, y: u32) -> u32 {
        let a = self.start + self.offset(e, x, y);
        let b = (self.swizzle / 16).max(1).trailing_zeros();
        let mask = (1u32 << b) - 1;
        a ^ (((a >> (4 + 3)) & mask) << 4)
    }
    /// The 64-bit descriptor (PTX ISA 9.7.15.5.1.2.2) of this layout, start relative to the base
    /// (the kernel adds the base's address >> 4).
    pub fn desc(&self) -> u64 {
        let enc = |x: u32| ((x & 0x3ffff) >> 4) as u64;
        let mode = match self.swizzle {
            0 => 0u64,
            128 => 1,
            64 => 2,
            _ => 3,
        };
        enc(self.start) | enc(self.lbo) << 16 | enc(self.sbo) << 32 | mode << 62
    }
}

/// A canonical layout for an operand of `rows` (M or N) x one instruction's K, CUTLASS-style
/// (every swizzle atom starts at a multiple of 8 x span bytes), with one of two tilings of its
/// core matrices / atoms (`variant`) so that LBO and SBO each take two roles' worth of values.
pub fn canonical(k_major: bool, swizzle: u32, e: Elem, rows: u32, variant: u32, start: u32) -> Layout {
    let w = swizzle;
    let (lbo, sbo) = if k_major {
        if w == 0 {
            // 8 rows x 16 bytes core matrices, two along K (32 bytes).
            if variant == 0 {
                (128, 256)
            } else {
                (128 * (rows / 8), 128)
            }
        } else if variant == 0 {
            (16, 8 * w)
        } else {
            (16, 16 * w)
        }
    } else {
        let mn_bytes = rows * e.bytes();
        if w == 0 {
            // 8 K-rows x 16 bytes core matrices: mn_bytes/16 along M/N, two along K (16).
            if variant == 0 {
                (128 * (mn_bytes / 16), 128)
            } else {
                (128, 256)
            }
        } else {
            let blocks = mn_bytes.div_ceil(w);
            if variant == 0 {
                (16 * w, 8 * w)
            } else {
                (8 * w, 8 * w * blocks)
            }
        }
    };
    Layout { k_major, swizzle, lbo, sbo, start }
}

/// (row, column) of value `v` of thread `t` (0..128) of a warpgroup in the D fragment, the A
/// fragment of 16-bit types, or the A fragment of 8-bit types: CuTe's thread-value layouts of
/// the manual's figures (threads (4,8,4) : (2 cols, 1 row, 16 rows) in a column-major 64-row
/// matrix; values (2,2,..) : (1 col, 8 rows, 8 cols) for D and 16-bit A, (4,2,2) : (1 col, 8 rows,
/// 16 cols) for 8-bit A).
pub fn frag_pos(t: u32, v: u32, a8: bool) -> (u32, u32) {
    let (t0, t1, t2) = (t % 4, (t / 4) % 8, t / 32);
    let idx = if a8 {
        t0 * 256 + t1 + t2 * 16 + (v % 4) * 64 + ((v / 4) % 2) * 8 + (v / 8) * 1024
    } else {
        t0 * 128 + t1 + t2 * 16 + (v % 2) * 64 + ((v / 2) % 2) * 8 + (v / 4) * 512
    };
    (idx % 64, idx / 64)
}

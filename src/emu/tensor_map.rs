//! The emulator's tensor-map encoding: after the driver's rules ([`TensorMapSpec::validate`]) and
//! the emulator's own refusals (features whose exact behaviour no document fixes), the spec is
//! written into the 128 opaque bytes under a tag and a checksum, and decoded again by
//! `cp.async.bulk.tensor` / `prefetch.tensormap` in the kernel (a map that does not decode is a
//! sanitizer finding there).

use crate::device::tensor_map::{
    Interleave, TensorMap, TensorMapElem, TensorMapError, TensorMapFill, TensorMapSpec, TensorMapSwizzle,
};

const MAGIC: &[u8; 4] = b"AJTM";
const VERSION: u8 = 1;

/// A decoded tensor map, as the copy instructions use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tmap {
    pub esize: u32,
    pub rank: usize,
    pub addr: u64,
    pub dims: [u64; 5],
    /// Byte stride of each dimension (dimension 0: the element size).
    pub strides: [u64; 5],
    pub box_dims: [u32; 5],
    pub elem_strides: [u32; 5],
    /// TensorMapSwizzle span in bytes (0: none; 32, 64, 128).
    pub swizzle: u32,
}

impl Tmap {
    /// Elements of the box along dimension `d` in shared memory.
    pub fn box_elems(&self, d: usize) -> u32 {
        if d == 0 {
            self.box_dims[0]
        } else {
            self.box_dims[d].div_ceil(self.elem_strides[d])
        }
    }
    /// Bytes of one box in shared memory.
    pub fn box_bytes(&self) -> u64 {
        (0..self.rank).map(|d| self.box_elems(d) as u64).product::<u64>() * self.esize as u64
    }
}

fn fnv(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| (h ^ x as u32).wrapping_mul(0x0100_0193))
}

/// Validates `spec` (the driver's rules, then what the emulator does not model) and encodes it.
pub fn encode(spec: &TensorMapSpec) -> Result<TensorMap, TensorMapError> {
    spec.validate()?;
    let nm = |s: &str| Err(TensorMapError::NotModelled(s.to_string()));
    if spec.interleave != Interleave::None {
        return nm("interleaved layouts");
    }
    if matches!(
        spec.swizzle,
        TensorMapSwizzle::B128Atom32 | TensorMapSwizzle::B128Atom32Flip8 | TensorMapSwizzle::B128Atom64
    ) {
        return nm("128-byte swizzles of 32- or 64-byte atoms");
    }
    if spec.fill == TensorMapFill::Nan {
        return nm("the OOB-NaN fill (its bit pattern is not documented)");
    }
    if matches!(spec.elem, TensorMapElem::Tf32 | TensorMapElem::Tf32Ftz | TensorMapElem::F32Ftz) {
        return nm("TF32 and FTZ element types (whether the copy rounds or flushes is not documented)");
    }
    let inner = spec.box_dims[0] * spec.elem.bytes() as u32;
    if spec.swizzle != TensorMapSwizzle::None && inner != spec.swizzle.span() {
        return Err(TensorMapError::NotModelled(format!(
            "a {inner}-byte box row narrower than the {}-byte swizzle span (its shared-memory layout is unconfirmed)",
            spec.swizzle.span()
        )));
    }
    if spec.swizzle != TensorMapSwizzle::None && !spec.addr.is_multiple_of(128) {
        return nm("a swizzled map whose global address is not 128-byte aligned (CUDA programming guide, TMA swizzle: 128 bytes)");
    }
    let mut b = [0u8; 128];
    b[..4].copy_from_slice(MAGIC);
    b[4] = VERSION;
    b[5] = spec.elem.cuda() as u8;
    b[6] = spec.rank() as u8;
    b[7] = spec.swizzle.cuda() as u8;
    b[8..16].copy_from_slice(&spec.addr.to_le_bytes());
    for (d, &n) in spec.dims.iter().enumerate() {
        b[16 + 8 * d..24 + 8 * d].copy_from_slice(&n.to_le_bytes());
    }
    for (d, &s) in spec.strides.iter().enumerate() {
        b[56 + 8 * d..64 + 8 * d].copy_from_slice(&s.to_le_bytes());
    }
    for (d, &n) in spec.box_dims.iter().enumerate() {
        b[88 + 2 * d..90 + 2 * d].copy_from_slice(&(n as u16).to_le_bytes());
    }
    for (d, &e) in spec.element_strides.iter().enumerate() {
        b[98 + d] = e as u8;
    }
    b[103] = spec.l2_promotion as u8;
    let sum = fnv(&b[..104]);
    b[104..108].copy_from_slice(&sum.to_le_bytes());
    Ok(TensorMap(b))
}

/// Decodes a map [`encode`] wrote; the error says why the bytes are not one.
pub fn decode(b: &[u8; 128]) -> Result<Tmap, String> {
    if &b[..4] != MAGIC || b[4] != VERSION {
        return Err("not a tensor map encoded by the emulator's encode_tensor_map".into());
    }
    if fnv(&b[..104]).to_le_bytes() != b[104..108] {
        return Err("tensor map bytes were modified after encoding (checksum mismatch)".into());
    }
    let dtype = TensorMapElem::ALL.get(b[5] as usize).ok_or("bad element type")?;
    let rank = b[6] as usize;
    let swizzle = match b[7] {
        0 => 0,
        1 => 32,
        2 => 64,
        3 => 128,
        _ => return Err("bad swizzle".into()),
    };
    if !(1..=5).contains(&rank) {
        return Err("bad rank".into());
    }
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let mut t = Tmap {
        esize: dtype.bytes() as u32,
        rank,
        addr: u64_at(8),
        dims: [1; 5],
        strides: [0; 5],
        box_dims: [1; 5],
        elem_strides: [1; 5],
        swizzle,
    };
    t.strides[0] = t.esize as u64;
    for d in 0..rank {
        t.dims[d] = u64_at(16 + 8 * d);
        t.box_dims[d] = u16::from_le_bytes([b[88 + 2 * d], b[89 + 2 * d]]) as u32;
        t.elem_strides[d] = b[98 + d] as u32;
        if d > 0 {
            t.strides[d] = u64_at(56 + 8 * (d - 1));
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut s = TensorMapSpec::packed(
            TensorMapElem::Bf16,
            0x1_0000_0000,
            &[200, 70, 3],
            &[64, 16, 2],
            TensorMapSwizzle::B128,
        );
        s.element_strides = vec![1, 2, 1];
        let m = encode(&s).expect("encodes");
        let t = decode(&m.0).expect("decodes");
        assert_eq!((t.esize, t.rank, t.addr, t.swizzle), (2, 3, 0x1_0000_0000, 128));
        assert_eq!(&t.dims[..3], &[200, 70, 3]);
        assert_eq!(&t.strides[..3], &[2, 400, 400 * 70]);
        assert_eq!(&t.box_dims[..3], &[64, 16, 2]);
        assert_eq!(t.box_elems(1), 8);
        assert_eq!(t.box_bytes() as usize, s.box_bytes());
        let mut bad = m;
        bad.0[20] ^= 1;
        assert!(decode(&bad.0).unwrap_err().contains("checksum"));
        assert!(decode(&[0; 128]).is_err());
        let narrow =
            TensorMapSpec::packed(TensorMapElem::Bf16, 0x1_0000_0000, &[64, 8], &[32, 8], TensorMapSwizzle::B128);
        assert!(matches!(encode(&narrow), Err(TensorMapError::NotModelled(_))));
        let mut nan = s.clone();
        nan.fill = TensorMapFill::Nan;
        assert!(matches!(encode(&nan), Err(TensorMapError::NotModelled(_))));
        let mut unaligned = s.clone();
        unaligned.addr += 16;
        assert!(matches!(encode(&unaligned), Err(TensorMapError::NotModelled(_))));
        unaligned.swizzle = TensorMapSwizzle::None;
        assert!(encode(&unaligned).is_ok());
    }
}

//! Shapes and layouts of one attention call.
//!
//! Layout is BSHD: Q and O `[batch, seq_q, heads, head_dim]`, K and V `[batch, seq_k, kv_heads,
//! head_dim]`, LSE `[batch, heads, seq_q]` (f32, natural log). Query head `h` reads KV head
//! `h / (heads / kv_heads)` (GQA). Prefill and decode differ only in `seq_q`.

use crate::error::{invalid, Result};
use crate::mask::Mask;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    Bf16,
    F16,
}

impl Dtype {
    pub fn bytes(self) -> usize {
        2
    }
}

/// The head dimensions the kernels are compiled for (256: the Hopper prefill only; each
/// variant's plan refuses the ones it does not take).
pub const SUPPORTED_HEAD_DIMS: [usize; 3] = [64, 128, 256];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub batch: usize,
    pub seq_q: usize,
    pub seq_k: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Shape {
    /// Self-attention prefill: seq_q == seq_k.
    pub fn prefill(batch: usize, seq: usize, heads: usize, kv_heads: usize, head_dim: usize) -> Self {
        Shape { batch, seq_q: seq, seq_k: seq, heads, kv_heads, head_dim }
    }
    /// Decode: `new_tokens` queries against a cache of `cache` keys (the new tokens included).
    pub fn decode(
        batch: usize,
        new_tokens: usize,
        cache: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Self {
        Shape { batch, seq_q: new_tokens, seq_k: cache, heads, kv_heads, head_dim }
    }
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads.max(1)
    }
    pub fn q_elems(&self) -> usize {
        self.batch * self.seq_q * self.heads * self.head_dim
    }
    pub fn kv_elems(&self) -> usize {
        self.batch * self.seq_k * self.kv_heads * self.head_dim
    }
    pub fn lse_elems(&self) -> usize {
        self.batch * self.heads * self.seq_q
    }
    /// Element offset of Q/O[b, s, h, 0].
    pub fn q_index(&self, b: usize, s: usize, h: usize) -> usize {
        ((b * self.seq_q + s) * self.heads + h) * self.head_dim
    }
    /// Element offset of K/V[b, s, hk, 0].
    pub fn kv_index(&self, b: usize, s: usize, hk: usize) -> usize {
        ((b * self.seq_k + s) * self.kv_heads + hk) * self.head_dim
    }
    pub fn lse_index(&self, b: usize, h: usize, s: usize) -> usize {
        (b * self.heads + h) * self.seq_q + s
    }

    /// Checks the shape alone; kernels additionally need a supported head_dim.
    pub fn validate(&self) -> Result<()> {
        let Shape { batch, seq_q, seq_k, heads, kv_heads, head_dim } = *self;
        for (name, v) in [
            ("batch", batch),
            ("seq_q", seq_q),
            ("seq_k", seq_k),
            ("heads", heads),
            ("kv_heads", kv_heads),
            ("head_dim", head_dim),
        ] {
            if v == 0 {
                return invalid(format!("{name} must be at least 1"));
            }
        }
        if heads % kv_heads != 0 {
            return invalid(format!("heads ({heads}) must be a multiple of kv_heads ({kv_heads}) for GQA"));
        }
        // Kernels index with 32-bit rows and 64-bit element offsets; keep every extent in i32.
        // Products are checked, not wrapped: a huge batch times heads must not pass as a small one.
        let bh = batch.saturating_mul(heads);
        for (name, v) in [("seq_q", seq_q), ("seq_k", seq_k), ("batch*heads", bh)] {
            if v > i32::MAX as usize {
                return invalid(format!("{name} = {v} exceeds the kernels' 32-bit index range"));
            }
        }
        // Element counts (and their bytes) must be addressable: Q/O, K/V and the f32 LSE.
        let elems = |dims: [usize; 4]| dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        for (name, dims) in [
            ("Q", [batch, seq_q, heads, head_dim]),
            ("K/V", [batch, seq_k, kv_heads, head_dim]),
            ("LSE", [batch, heads, seq_q, 1]),
        ] {
            if elems(dims).and_then(|n| n.checked_mul(4)).is_none_or(|b| b > isize::MAX as usize) {
                return invalid(format!(
                    "{name} of {} elements is beyond addressable memory; reduce batch, heads or sequence",
                    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" x ")
                ));
            }
        }
        Ok(())
    }

    /// Q, K and V element counts must match the shape.
    pub fn check_input_lens(&self, q: usize, k: usize, v: usize) -> Result<()> {
        if q != self.q_elems() || k != self.kv_elems() || v != self.kv_elems() {
            return invalid(format!(
                "input lengths q={q} k={k} v={v} do not match the shape (q {} / kv {})",
                self.q_elems(),
                self.kv_elems()
            ));
        }
        Ok(())
    }

    pub fn validate_for_kernels(&self) -> Result<()> {
        self.validate()?;
        if !SUPPORTED_HEAD_DIMS.contains(&self.head_dim) {
            return invalid(format!(
                "head_dim {} is not compiled; kernels support {:?}",
                self.head_dim, SUPPORTED_HEAD_DIMS
            ));
        }
        Ok(())
    }
}

/// A complete attention call: shape, mask, scale and element type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub shape: Shape,
    pub mask: Mask,
    /// Softmax scale; `None` means 1/sqrt(head_dim).
    pub scale: Option<f64>,
    #[serde(default)]
    pub dtype: Dtype,
}

impl Problem {
    pub fn new(shape: Shape, mask: Mask) -> Self {
        Problem { shape, mask, scale: None, dtype: Dtype::Bf16 }
    }
    pub fn scale(&self) -> f64 {
        self.scale.unwrap_or(1.0 / (self.shape.head_dim as f64).sqrt())
    }
    pub fn validate(&self) -> Result<()> {
        self.shape.validate()?;
        if let Some(s) = self.scale {
            if !s.is_finite() || s <= 0.0 {
                return invalid(format!("scale must be positive and finite, got {s}"));
            }
        }
        self.mask.validate(self.shape.seq_q, self.shape.seq_k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_catches_overflowing_products() {
        assert!(Shape::prefill(1, 64, 4, 4, 128).validate().is_ok());
        // batch * heads wraps to 0 in 64 bits: refused, not taken as small.
        assert!(Shape::prefill(1 << 62, 64, 4, 4, 128).validate().is_err());
        // Every extent in range, the element count beyond addressable memory.
        let e = Shape::prefill(1 << 20, i32::MAX as usize, 1, 1, 1 << 20).validate().unwrap_err();
        assert!(e.to_string().contains("beyond addressable memory"), "{e}");
    }
}

//! Model architectures: presets with cited shapes, and custom models from TOML or JSON.
//!
//! Only what the estimator needs: the attention shape (layers, heads, KV heads, head_dim), the
//! parameter count that every token multiplies (dense) or routes through (MoE), and d_model / ffn
//! for activation memory. Parameters are counted from the shape unless the model's paper gives a
//! total that the shape alone cannot reproduce (MLA, MoE), in which case the paper's figure wins.

use crate::error::{invalid, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Mixture-of-experts FFN: which experts a token reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moe {
    /// Routed experts per MoE layer.
    pub experts: u32,
    /// Routed experts each token activates.
    pub active: u32,
    /// Parameters of one routed expert in one layer.
    pub expert_params: f64,
    /// Layers with an MoE FFN (the others are dense).
    pub moe_layers: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    /// Where the shape comes from (paper, model card, config.json).
    #[serde(default)]
    pub source: String,
    pub layers: u32,
    pub d_model: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads (GQA); equal to `heads` for plain multi-head attention.
    pub kv_heads: u32,
    pub head_dim: u32,
    /// Dense SwiGLU FFN inner size (gate, up, down: 3 · d_model · ffn parameters per layer).
    pub ffn: u32,
    #[serde(default)]
    pub vocab: u32,
    /// Input embedding and output head share weights.
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Total parameters, when the shape formula does not apply (MoE, MLA). Stored in memory.
    #[serde(default)]
    pub total_params: Option<f64>,
    /// Parameters each token passes through (MoE: shared + active experts).
    #[serde(default)]
    pub active_params: Option<f64>,
    #[serde(default)]
    pub moe: Option<Moe>,
    /// Bytes per weight (2 for bf16).
    #[serde(default = "two")]
    pub bytes_per_param: f64,
    /// Bytes per cached K or V element (2 for bf16).
    #[serde(default = "two")]
    pub kv_bytes_per_elem: f64,
    /// Free-form notes shown with the estimate (simplifications).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Largest byte count a model may imply (weights, a token's cache): 2^80 bytes, far beyond any
/// deployment, and small enough that the estimator's products stay finite.
const MAX_BYTES: f64 = 1.2089258196146292e24;

fn two() -> f64 {
    2.0
}

impl ModelSpec {
    pub fn validate(&self) -> Result<()> {
        for (n, v) in [
            ("layers", self.layers),
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
        ] {
            if v == 0 {
                return invalid(format!("model {}: {n} must be at least 1", self.name));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return invalid(format!(
                "model {}: heads ({}) must be a multiple of kv_heads ({})",
                self.name, self.heads, self.kv_heads
            ));
        }
        for (n, v) in [("bytes_per_param", self.bytes_per_param), ("kv_bytes_per_elem", self.kv_bytes_per_elem)] {
            if !(v.is_finite() && v > 0.0) {
                return invalid(format!("model {}: {n} must be positive, got {v}", self.name));
            }
        }
        for (n, v) in [("total_params", self.total_params), ("active_params", self.active_params)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return invalid(format!("model {}: {n} must be positive, got {v}", self.name));
                }
            }
        }
        // What the estimator multiplies must stay finite (parameters times bytes, cache bytes).
        for (n, v) in [
            ("weight bytes (total_params x bytes_per_param)", self.weight_bytes()),
            ("active parameters", self.active_params()),
            ("KV cache bytes per token", self.kv_bytes_per_token()),
            ("recurrent state bytes per layer", self.recurrent_state_bytes_per_layer()),
            ("activation size (d_model + ffn)", (self.d_model as f64 + self.ffn as f64) * self.bytes_per_param),
        ] {
            if !v.is_finite() || v > MAX_BYTES {
                return invalid(format!(
                    "model {}: {n} is {v:e}, beyond any machine ({MAX_BYTES:e} at most)",
                    self.name
                ));
            }
        }
        if self.active_params() > self.total_params() * (1.0 + 1e-9) {
            return invalid(format!("model {}: active_params exceeds total_params", self.name));
        }
        if let Some(m) = &self.moe {
            if m.experts == 0 || m.active == 0 || m.active > m.experts || m.moe_layers > self.layers {
                return invalid(format!(
                    "model {}: moe needs 1 <= active <= experts and moe_layers <= layers",
                    self.name
                ));
            }
            if !(m.expert_params.is_finite() && m.expert_params > 0.0) {
                return invalid(format!("model {}: moe.expert_params must be positive", self.name));
            }
            let routed = m.expert_params * (m.experts as f64) * (m.moe_layers as f64);
            if routed > self.total_params() {
                return invalid(format!("model {}: routed expert parameters exceed total_params", self.name));
            }
        }
        Ok(())
    }

    /// Parameters per layer from the shape: Q and O projections, K and V projections, SwiGLU FFN.
    pub fn layer_params(&self) -> f64 {
        let d = self.d_model as f64;
        let q = self.heads as f64 * self.head_dim as f64;
        let kv = self.kv_heads as f64 * self.head_dim as f64;
        2.0 * d * q + 2.0 * d * kv + 3.0 * d * self.ffn as f64
    }

    /// Embedding and output head parameters.
    pub fn embedding_params(&self) -> f64 {
        let e = self.vocab as f64 * self.d_model as f64;
        if self.tied_embeddings {
            e
        } else {
            2.0 * e
        }
    }

    /// Parameters stored in memory.
    pub fn total_params(&self) -> f64 {
        self.total_params.unwrap_or_else(|| self.layers as f64 * self.layer_params() + self.embedding_params())
    }

    /// Parameters each token multiplies (2 FLOPs each per token).
    pub fn active_params(&self) -> f64 {
        self.active_params.unwrap_or_else(|| self.total_params())
    }

    pub fn weight_bytes(&self) -> f64 {
        self.total_params() * self.bytes_per_param
    }

    /// Input-embedding parameters, which a step only looks up (a row per token) rather than
    /// multiplies; none when the output head shares (and so multiplies) them.
    pub fn lookup_params(&self) -> f64 {
        if self.tied_embeddings {
            0.0
        } else {
            self.vocab as f64 * self.d_model as f64
        }
    }

    /// Parameters each token multiplies, 2 FLOPs each: the active ones but the embedding lookup.
    pub fn matmul_params(&self) -> f64 {
        (self.active_params() - self.lookup_params()).max(0.0)
    }

    /// Bytes of weights a step over `tokens` tokens reads: every non-routed weight once, plus the
    /// routed experts at least one token picks (uniform routing: each expert is missed by one token
    /// with probability 1 - active/experts, independently).
    pub fn weight_bytes_read(&self, tokens: f64) -> f64 {
        // The embedding table: only the step's tokens' rows.
        let lookup = self.lookup_params();
        let rows = tokens.max(1.0).min(self.vocab as f64) * self.d_model as f64;
        let embedding = (rows.min(lookup) - lookup) * self.bytes_per_param;
        embedding
            + match &self.moe {
                None => self.weight_bytes(),
                Some(m) => {
                    let routed_all = m.expert_params * m.experts as f64 * m.moe_layers as f64;
                    let always = self.total_params() - routed_all;
                    let p_miss = 1.0 - m.active as f64 / m.experts as f64;
                    let touched = m.experts as f64 * (1.0 - p_miss.powf(tokens.max(1.0)));
                    (always + m.expert_params * touched * m.moe_layers as f64) * self.bytes_per_param
                }
            }
    }

    /// K and V bytes one token adds to the cache, over all layers.
    pub fn kv_bytes_per_token(&self) -> f64 {
        2.0 * self.layers as f64 * self.kv_heads as f64 * self.head_dim as f64 * self.kv_bytes_per_elem
    }

    /// Bytes of a recurrent state per layer (RWKV-6 / Mamba-2 style: a head_dim x head_dim matrix
    /// per head), used by the recurrent-state policy only.
    pub fn recurrent_state_bytes_per_layer(&self) -> f64 {
        self.heads as f64 * (self.head_dim as f64).powi(2) * self.kv_bytes_per_elem
    }

    pub fn from_toml(text: &str) -> Result<ModelSpec> {
        let m: ModelSpec =
            toml::from_str(text).map_err(|e| Error::Format(format!("model TOML: {}", toml_line(&e, text))))?;
        m.validate()?;
        Ok(m)
    }

    pub fn from_json(text: &str) -> Result<ModelSpec> {
        let m: ModelSpec = serde_json::from_str(text).map_err(|e| Error::Format(format!("model JSON: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// A preset name, or a path to a `.toml` / `.json` model file (any path the OS can name,
    /// UTF-8 or not; at most [`MAX_MODEL_FILE_BYTES`]).
    pub fn resolve(name_or_path: impl AsRef<std::ffi::OsStr>) -> Result<ModelSpec> {
        let name_or_path = name_or_path.as_ref();
        if let Some(m) = name_or_path.to_str().and_then(preset) {
            return Ok(m);
        }
        let path = Path::new(name_or_path);
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let toml = match ext.as_deref() {
            Some("toml") => true,
            Some("json") => false,
            _ => {
                return invalid(format!(
                    "unknown model preset {:?}; presets: {}; or give a .toml/.json file",
                    name_or_path.to_string_lossy(),
                    PRESETS.join(", ")
                ))
            }
        };
        let text = crate::files::read_text(path, MAX_MODEL_FILE_BYTES, "model file")?;
        let r = if toml { Self::from_toml(&text) } else { Self::from_json(&text) };
        r.map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            e => e,
        })
    }
}

/// Largest model file read: a model is a few dozen lines.
pub const MAX_MODEL_FILE_BYTES: u64 = 1 << 20;

/// A TOML error in one line: where (line and column) and what (the parser's own message spans
/// several lines with a picture of the input).
fn toml_line(e: &toml::de::Error, text: &str) -> String {
    let what = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            format!("line {line}, column {col}: {what}")
        }
        None => what,
    }
}

/// Preset names, in the order `--help` lists them.
pub const PRESETS: [&str; 5] = ["dense-1t", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "deepseek-v3"];

/// A preset by name (`1t` is an alias of `dense-1t`).
pub fn preset(name: &str) -> Option<ModelSpec> {
    let base = |name: &str, source: &str| ModelSpec {
        name: name.into(),
        source: source.into(),
        layers: 0,
        d_model: 0,
        heads: 0,
        kv_heads: 0,
        head_dim: 128,
        ffn: 0,
        vocab: 128256,
        tied_embeddings: false,
        total_params: None,
        active_params: None,
        moe: None,
        bytes_per_param: 2.0,
        kv_bytes_per_elem: 2.0,
        notes: vec![],
    };
    const LLAMA3: &str = "Llama Team, \"The Llama 3 Herd of Models\", arXiv:2407.21783, Table 3 (layers, model \
                          dimension, FFN dimension, attention heads, key/value heads; vocabulary 128K = 128256)";
    let m = match name.to_ascii_lowercase().as_str() {
        "dense-1t" | "1t" => ModelSpec {
            layers: 128,
            d_model: 25600,
            heads: 200,
            kv_heads: 8,
            ffn: 83968,
            notes: vec!["hypothetical dense 1T model: Llama-3-style decoder (GQA 8 KV heads, head_dim 128, SwiGLU, \
                 untied 128256-token embeddings) scaled to 128 layers x d_model 25600 with FFN 83968, \
                 which counts 1.0065e12 parameters"
                .into()],
            ..base(
                "dense-1t",
                "hypothetical; shape chosen here (see notes), Llama 3 recipe from arXiv:2407.21783 Table 3",
            )
        },
        "llama-3.1-8b" | "llama-8b" => {
            ModelSpec { layers: 32, d_model: 4096, heads: 32, kv_heads: 8, ffn: 14336, ..base("llama-3.1-8b", LLAMA3) }
        }
        "llama-3.1-70b" | "llama-70b" => {
            ModelSpec { layers: 80, d_model: 8192, heads: 64, kv_heads: 8, ffn: 28672, ..base("llama-3.1-70b", LLAMA3) }
        }
        "llama-3.1-405b" | "llama-405b" => ModelSpec {
            layers: 126,
            d_model: 16384,
            heads: 128,
            kv_heads: 8,
            ffn: 53248,
            ..base("llama-3.1-405b", LLAMA3)
        },
        "deepseek-v3" => ModelSpec {
            layers: 61,
            d_model: 7168,
            heads: 128,
            // MLA caches one 512-wide latent plus a 64-wide shared RoPE key per token and layer
            // (576 elements). Modeled as one KV head of head_dim 288 (K and V: 2 x 288 = 576), so
            // the cache bytes are exact and the score FLOPs approximate (absorbed MLA: 576-wide
            // keys, 512-wide values per query head).
            kv_heads: 1,
            head_dim: 288,
            ffn: 18432,
            vocab: 129280,
            total_params: Some(671e9),
            active_params: Some(37e9),
            moe: Some(Moe {
                experts: 256,
                active: 8,
                // SwiGLU expert of moe_intermediate_size 2048: 3 x 7168 x 2048.
                expert_params: 3.0 * 7168.0 * 2048.0,
                moe_layers: 58,
            }),
            notes: vec![
                "MLA modeled as 1 KV head x head_dim 288 (exact cache bytes: 576 bf16 per token and layer); the \
                 latent cache is replicated on every tensor-parallel GPU (no data-parallel attention)"
                    .into(),
                "routing assumed uniform over 256 experts (8 active); the shared expert counts as always read".into(),
                "multi-token-prediction module (14B) not counted; 671B total / 37B active as published".into(),
            ],
            ..base(
                "deepseek-v3",
                "DeepSeek-AI, \"DeepSeek-V3 Technical Report\", arXiv:2412.19437, sec. 4.2 (61 layers, hidden \
                 7168, 128 heads, kv_lora_rank 512, RoPE dim 64, 1 shared + 256 routed experts, 8 active, \
                 expert size 2048, first 3 layers dense; 671B total, 37B activated); \
                 huggingface.co/deepseek-ai/DeepSeek-V3 config.json (intermediate_size 18432, vocab 129280)",
            )
        },
        _ => return None,
    };
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_parameter_counts_match_published_sizes() {
        let p = |n| preset(n).unwrap().total_params();
        // Published: 70.6B and 405.9B (Llama 3.1 model cards); 1T by construction.
        assert!((p("llama-3.1-8b") / 8.03e9 - 1.0).abs() < 0.005, "{}", p("llama-3.1-8b"));
        assert!((p("llama-3.1-70b") / 70.55e9 - 1.0).abs() < 0.005, "{}", p("llama-3.1-70b"));
        assert!((p("llama-3.1-405b") / 405.85e9 - 1.0).abs() < 0.005, "{}", p("llama-3.1-405b"));
        assert!((p("dense-1t") / 1.0e12 - 1.0).abs() < 0.01, "{}", p("dense-1t"));
        for n in PRESETS {
            preset(n).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn kv_bytes_closed_form() {
        // 1T: 2 (K,V) x 128 layers x 8 heads x 128 dims x 2 bytes = 512 KiB per token.
        assert_eq!(preset("1t").unwrap().kv_bytes_per_token(), 524288.0);
        // DeepSeek-V3 MLA: 576 elements x 2 bytes x 61 layers.
        assert_eq!(preset("deepseek-v3").unwrap().kv_bytes_per_token(), 576.0 * 2.0 * 61.0);
    }

    #[test]
    fn moe_reads_more_experts_with_more_tokens() {
        let m = preset("deepseek-v3").unwrap();
        let one = m.weight_bytes_read(1.0);
        let many = m.weight_bytes_read(1e6);
        assert!(one < many && many <= m.weight_bytes() * (1.0 + 1e-12));
        // One token reads its 8 experts plus everything not routed: between 37B and 671B weights.
        assert!(one > 30e9 * 2.0 && one < 80e9 * 2.0, "{one}");
    }

    #[test]
    fn custom_model_from_toml_and_errors() {
        let t = "name = \"tiny\"\nlayers = 2\nd_model = 256\nheads = 4\nkv_heads = 2\nhead_dim = 64\nffn = 512\n";
        let m = ModelSpec::from_toml(t).unwrap();
        assert_eq!(m.layers, 2);
        assert!(ModelSpec::from_toml("name = \"x\"\nlayers = 0").is_err());
        let bad = t.replace("kv_heads = 2", "kv_heads = 3");
        assert!(matches!(ModelSpec::from_toml(&bad), Err(Error::Invalid(_))));
        assert!(matches!(ModelSpec::resolve("gpt-9"), Err(Error::Invalid(m)) if m.contains("unknown model preset")));
        let e = ModelSpec::from_toml("name = \"x\"\nlayers = [1, 2\n").unwrap_err().to_string();
        assert!(e.contains("model TOML: line 2") && !e.contains('\n'), "{e}");
    }
}

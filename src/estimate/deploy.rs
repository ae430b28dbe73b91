//! Deployment: how many GPUs a model occupies and how it is split. Tensor parallelism inside a
//! node (up to `gpus_per_node`), pipeline stages across nodes. Stages run one after another for a
//! decode step (no micro-batching), so at any time one stage's GPUs work and the rest wait; every
//! occupied GPU is counted in the energy, waiting ones at the waiting power.

use super::model::ModelSpec;
use super::policy::{Policy, PolicyParams};
use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};

pub const GIB: f64 = (1u64 << 30) as f64;

/// Prefills run in chunks of this many tokens (over the whole batch), as serving engines do
/// (chunked prefill); it bounds the activations a prefill holds, not its FLOPs.
pub const PREFILL_CHUNK_TOKENS: f64 = 8192.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Tensor-parallel GPUs per stage.
    pub tp: usize,
    /// Pipeline stages.
    pub pp: usize,
    /// Memory of one GPU, bytes.
    pub gpu_memory: f64,
    /// Fraction of each GPU's memory kept free (CUDA context, allocator, fragmentation).
    pub headroom: f64,
}

impl Deployment {
    pub fn gpus(&self) -> usize {
        self.tp * self.pp
    }
    /// Usable bytes per GPU.
    pub fn usable(&self) -> f64 {
        self.gpu_memory * (1.0 - self.headroom)
    }
    /// Query heads one GPU of a stage computes.
    pub fn heads_per_gpu(&self, m: &ModelSpec) -> usize {
        (m.heads as usize).div_ceil(self.tp)
    }
    /// KV heads one GPU holds: heads are split, and replicated once tp exceeds them.
    pub fn kv_heads_per_gpu(&self, m: &ModelSpec) -> usize {
        (m.kv_heads as usize).div_ceil(self.tp)
    }
    /// Cached K/V bytes per token of one conversation, summed over every GPU (replicas included).
    pub fn kv_bytes_per_token(&self, m: &ModelSpec) -> f64 {
        let stored_heads = (self.kv_heads_per_gpu(m) * self.tp) as f64;
        m.kv_bytes_per_token() * stored_heads / m.kv_heads as f64
    }
    /// The split of `gpus` GPUs: tensor parallel up to a node, stages beyond.
    pub fn split(gpus: usize, gpus_per_node: usize, gpu_memory: f64, headroom: f64) -> Result<Deployment> {
        if gpus == 0 {
            return invalid("the deployment needs at least one GPU");
        }
        let node = gpus_per_node.max(1);
        if gpus > node && gpus % node != 0 {
            return invalid(format!("{gpus} GPUs: use at most {node} or a multiple of {node} (GPUs per node)"));
        }
        let tp = gpus.min(node);
        Ok(Deployment { tp, pp: gpus / tp, gpu_memory, headroom })
    }
}

/// What one GPU holds, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub weights: f64,
    pub kv: f64,
    /// Activations of the largest step (prefill hidden states, dense score matrix) for one layer.
    pub transient: f64,
}

impl Memory {
    pub fn total(&self) -> f64 {
        self.weights + self.kv + self.transient
    }
}

/// Per-GPU memory of `policy` at context `ctx` (tokens so far, the phrase included) for `batch`
/// conversations on `dep`.
pub fn memory(m: &ModelSpec, dep: &Deployment, p: Policy, pp: &PolicyParams, ctx: usize, batch: usize) -> Memory {
    let n = dep.gpus() as f64;
    let b = batch as f64;
    let weights = m.weight_bytes() / n;
    let kv = match p {
        Policy::Recurrent => b * m.layers as f64 * m.recurrent_state_bytes_per_layer() / n,
        _ => b * pp.cached_tokens(p, ctx) as f64 * dep.kv_bytes_per_token(m) / n,
    };
    // Tokens one prefill step pushes through a layer, per conversation.
    let prefill_tokens = match p {
        Policy::NoCache | Policy::Dense => ctx,
        Policy::Budget => pp.refresh,
        _ => 0,
    } as f64;
    // Hidden states in and out plus the SwiGLU intermediates of this GPU's FFN shard, bf16, for
    // one prefill chunk.
    let chunk = (b * prefill_tokens).min(PREFILL_CHUNK_TOKENS);
    let act = chunk * (2.0 * m.d_model as f64 + 3.0 * m.ffn as f64 / dep.tp as f64) * 2.0;
    let scores = if p == Policy::Dense {
        // Materialized: the f32 scores of this GPU's heads for one layer, seq_q x seq_k each,
        // unchunked (that is what dense attention means here).
        b * dep.heads_per_gpu(m) as f64 * (ctx as f64) * (ctx as f64) * 4.0
    } else {
        0.0
    };
    Memory { weights, kv, transient: act + scores }
}

/// The smallest deployment (1, 2, 4, ... a node, then whole nodes) up to `max_gpus` on which
/// `fits` holds; `None` if there is none.
pub fn smallest(
    max_gpus: usize,
    gpus_per_node: usize,
    gpu_memory: f64,
    headroom: f64,
    mut fits: impl FnMut(&Deployment) -> bool,
) -> Option<Deployment> {
    let node = gpus_per_node.max(1);
    let mut n = 1;
    while n <= max_gpus {
        let d = Deployment::split(n, node, gpu_memory, headroom).ok()?;
        if fits(&d) {
            return Some(d);
        }
        n = if n < node { (n * 2).min(node) } else { n + node };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::model::preset;

    #[test]
    fn splits() {
        let d = Deployment::split(32, 8, 80e9, 0.1).unwrap();
        assert_eq!((d.tp, d.pp, d.gpus()), (8, 4, 32));
        assert!(Deployment::split(12, 8, 80e9, 0.1).is_err());
        assert!(Deployment::split(0, 8, 80e9, 0.1).is_err());
        assert_eq!(Deployment::split(4, 8, 80e9, 0.1).unwrap().tp, 4);
    }

    #[test]
    fn memory_closed_form() {
        let m = preset("1t").unwrap();
        let d = Deployment::split(32, 8, 80e9, 0.1).unwrap();
        let pp = PolicyParams::default();
        let mem = memory(&m, &d, Policy::KvCache, &pp, 113_675, 2);
        assert_eq!(mem.weights, m.total_params() * 2.0 / 32.0);
        // 2 conversations x 113675 tokens x 512 KiB, over 32 GPUs; no prefill, no scores.
        assert_eq!(mem.kv, 2.0 * 113_675.0 * 524_288.0 / 32.0);
        assert_eq!(mem.transient, 0.0);
        let w = memory(&m, &d, Policy::Window, &pp, 113_675, 2);
        assert_eq!(w.kv, 2.0 * 4096.0 * 524_288.0 / 32.0);
        // Dense at 10000 tokens: 25 heads x 10000^2 f32 scores per conversation, plus one
        // 8192-token chunk of activations (2 d_model + 3 ffn / 8, bf16).
        let dm = memory(&m, &d, Policy::Dense, &pp, 10_000, 1);
        let act = 8192.0 * (2.0 * 25600.0 + 3.0 * 83968.0 / 8.0) * 2.0;
        assert_eq!(dm.transient, 25.0 * 1e8 * 4.0 + act);
    }

    #[test]
    fn weights_alone_set_the_floor() {
        let m = preset("1t").unwrap();
        let d = smallest(4096, 8, 80e9, 0.1, |d| {
            memory(&m, d, Policy::KvCache, &PolicyParams::default(), 1000, 1).total() <= d.usable()
        })
        .unwrap();
        // 2.013 TB of weights over 72 GB usable per GPU: 28 GPUs, rounded up to whole nodes.
        assert_eq!(d.gpus(), 32);
    }
}

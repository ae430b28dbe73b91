//! How attention handles the growing context: what each phrase runs and what stays in memory.

use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Full KV cache, flash-style split-KV decode: each token reads the whole cache once.
    KvCache,
    /// No cache kept between phrases: the whole history is prefilled again (flash) for every
    /// phrase, then the phrase is decoded against that transient cache.
    NoCache,
    /// Like `NoCache`, with dense materialized attention (scores written to memory).
    Dense,
    /// Sliding window: each token sees the last `window` tokens; the cache keeps only those.
    Window,
    /// BigBird-like block-sparse decode: global, local and random blocks; the cache keeps all.
    BlockSparse,
    /// A fixed context budget (memory tokens / retrieval): the context never exceeds `budget`;
    /// each phrase refreshes `refresh` tokens of it (a prefill) and pays a retrieval cost.
    Budget,
    /// Recurrent state (RWKV / Mamba-style): a fixed-size state per layer. Analytical only.
    Recurrent,
}

pub const ALL: [Policy; 7] = [
    Policy::KvCache,
    Policy::NoCache,
    Policy::Dense,
    Policy::Window,
    Policy::BlockSparse,
    Policy::Budget,
    Policy::Recurrent,
];

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::KvCache => "kv-cache",
            Policy::NoCache => "no-cache",
            Policy::Dense => "dense",
            Policy::Window => "window",
            Policy::BlockSparse => "block-sparse",
            Policy::Budget => "budget",
            Policy::Recurrent => "recurrent",
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Policy::KvCache => "full KV cache, flash decode",
            Policy::NoCache => "no cache: history re-prefilled (flash) every phrase",
            Policy::Dense => "no cache, dense materialized attention",
            Policy::Window => "sliding window",
            Policy::BlockSparse => "block-sparse (BigBird-like)",
            Policy::Budget => "fixed context budget + retrieval",
            Policy::Recurrent => "recurrent state (analytical only)",
        }
    }
    /// Does the policy keep a K/V cache between phrases (whose dtype `--kv-dtype` sets)?
    pub fn keeps_cache(self) -> bool {
        matches!(self, Policy::KvCache | Policy::Window | Policy::BlockSparse | Policy::Budget)
    }
    /// Is the history re-prefilled every phrase?
    pub fn reprefills(self) -> bool {
        matches!(self, Policy::NoCache | Policy::Dense)
    }
}

/// Knobs of the policies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolicyParams {
    /// Sliding window width in tokens.
    pub window: usize,
    /// Fixed budget: tokens in context.
    pub budget: usize,
    /// Fixed budget: tokens of the budget replaced (prefilled) each phrase by retrieval.
    pub refresh: usize,
    /// Fixed budget: joules of the retrieval itself (embedding, search) per phrase and conversation.
    pub retrieval_joules: f64,
}

impl Default for PolicyParams {
    fn default() -> Self {
        PolicyParams { window: 4096, budget: 8192, refresh: 1024, retrieval_joules: 0.0 }
    }
}

impl PolicyParams {
    pub fn validate(&self) -> Result<()> {
        if self.window == 0 || self.budget == 0 {
            return invalid("window and budget must be at least 1 token");
        }
        if self.refresh > self.budget {
            return invalid(format!("refresh ({}) cannot exceed the budget ({})", self.refresh, self.budget));
        }
        if !(self.retrieval_joules.is_finite() && self.retrieval_joules >= 0.0) {
            return invalid("retrieval joules must be a non-negative number");
        }
        Ok(())
    }

    /// Tokens whose K/V a policy keeps per conversation at context `ctx`.
    pub fn cached_tokens(&self, policy: Policy, ctx: usize) -> usize {
        match policy {
            Policy::KvCache | Policy::NoCache | Policy::Dense | Policy::BlockSparse => ctx,
            Policy::Window => ctx.min(self.window),
            Policy::Budget => ctx.min(self.budget),
            Policy::Recurrent => 0,
        }
    }
}

//! Block-sparse layouts: CSR over blocks of queries and keys, and the builders (Longformer,
//! BigBird, strided) the mask recipes name.

use crate::error::{invalid, Result};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Block-sparse layout in CSR form: row `r` of blocks (queries `r*block_q ..`) visits the key
/// blocks `col_idx[row_ptr[r]..row_ptr[r+1]]`, sorted ascending, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockLayout {
    pub block_q: usize,
    pub block_k: usize,
    pub row_ptr: Vec<i32>,
    pub col_idx: Vec<i32>,
}

impl BlockLayout {
    pub fn rows(&self) -> usize {
        self.row_ptr.len().saturating_sub(1)
    }
    pub fn row(&self, r: usize) -> &[i32] {
        &self.col_idx[self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize]
    }
    pub fn nnz(&self) -> usize {
        self.col_idx.len()
    }
    pub fn contains(&self, r: usize, c: usize) -> bool {
        r < self.rows() && self.row(r).binary_search(&(c as i32)).is_ok()
    }

    /// Checks the CSR itself, whatever the call: block sizes at least 1, `row_ptr` from 0 to nnz
    /// and non-decreasing, each row's columns non-negative and strictly increasing.
    pub fn check_structure(&self) -> Result<()> {
        if self.block_q == 0 || self.block_k == 0 {
            return invalid("block-sparse block sizes must be at least 1");
        }
        let (Some(&first), Some(&last)) = (self.row_ptr.first(), self.row_ptr.last()) else {
            return invalid("block layout row_ptr is empty (it has one entry per block row, plus one)");
        };
        if first != 0 || usize::try_from(last).ok() != Some(self.col_idx.len()) {
            return invalid(format!(
                "block layout row_ptr must start at 0 and end at nnz ({}), not {first} .. {last}",
                self.col_idx.len()
            ));
        }
        // Monotone from 0 to nnz: every row's range lies in col_idx.
        if let Some(r) = self.row_ptr.windows(2).position(|w| w[0] > w[1]) {
            return invalid(format!("block layout row_ptr decreases at row {r}"));
        }
        for r in 0..self.rows() {
            let row = self.row(r);
            for (k, &c) in row.iter().enumerate() {
                if c < 0 {
                    return invalid(format!("block layout row {r} has column {c}"));
                }
                if k > 0 && row[k - 1] >= c {
                    return invalid(format!("block layout row {r} columns must be strictly increasing"));
                }
            }
        }
        Ok(())
    }

    /// Checks the layout for a `seq_q x seq_k` call: its structure, one block row per
    /// `block_q` queries, every column within the keys' blocks.
    pub fn validate(&self, seq_q: usize, seq_k: usize) -> Result<()> {
        self.check_structure()?;
        let (nq, nk) = (seq_q.div_ceil(self.block_q), seq_k.div_ceil(self.block_k));
        if self.rows() != nq {
            return invalid(format!(
                "block layout has {} block rows, seq_q {seq_q} / block_q {} needs {nq}",
                self.rows(),
                self.block_q
            ));
        }
        if let Some((r, &c)) =
            (0..nq).flat_map(|r| self.row(r).iter().map(move |c| (r, c))).find(|(_, &c)| c as usize >= nk)
        {
            return invalid(format!("block layout row {r} has column {c}, outside 0..{nk}"));
        }
        Ok(())
    }

    /// From a dense predicate over (block row, block column).
    pub fn from_fn(
        seq_q: usize,
        seq_k: usize,
        block_q: usize,
        block_k: usize,
        mut f: impl FnMut(usize, usize) -> bool,
    ) -> Self {
        let (nq, nk) = (seq_q.div_ceil(block_q.max(1)), seq_k.div_ceil(block_k.max(1)));
        let mut row_ptr = vec![0i32];
        let mut col_idx = Vec::new();
        for r in 0..nq {
            col_idx.extend((0..nk).filter(|&c| f(r, c)).map(|c| c as i32));
            row_ptr.push(col_idx.len() as i32);
        }
        BlockLayout { block_q, block_k, row_ptr, col_idx }
    }

    /// Every block: equivalent to no mask.
    pub fn full(seq_q: usize, seq_k: usize, block_q: usize, block_k: usize) -> Self {
        Self::from_fn(seq_q, seq_k, block_q, block_k, |_, _| true)
    }

    /// An explicit CSR, validated.
    pub fn from_csr(
        seq_q: usize,
        seq_k: usize,
        block_q: usize,
        block_k: usize,
        row_ptr: Vec<i32>,
        col_idx: Vec<i32>,
    ) -> Result<Self> {
        let l = BlockLayout { block_q, block_k, row_ptr, col_idx };
        l.validate(seq_q, seq_k)?;
        Ok(l)
    }

    /// Longformer-style: each block row sees `local` blocks either side of its diagonal, and the
    /// first `global` blocks of the sequence see and are seen by everything. The diagonal is
    /// aligned bottom-right like the other masks, and "first" is by absolute position: a decode
    /// step at the end of a long cache is not a global row.
    pub fn longformer(seq_q: usize, seq_k: usize, block: usize, local: usize, global: usize) -> Self {
        let diag = Self::diag_fn(seq_q, seq_k, block);
        Self::from_fn(seq_q, seq_k, block, block, |r, c| {
            let d = diag(r);
            d < global || c < global || d.abs_diff(c) <= local
        })
    }

    /// BigBird: Longformer's band and global blocks plus `random` seeded random key blocks per
    /// block row. The picks come from one generator seeded with `seed ^ key blocks`, `random` per
    /// row in row order, so a decode row (one block row at the end of the cache) draws the same
    /// blocks whatever the number of new tokens.
    pub fn bigbird(
        seq_q: usize,
        seq_k: usize,
        block: usize,
        local: usize,
        global: usize,
        random: usize,
        seed: u64,
    ) -> Self {
        let nk = seq_k.div_ceil(block.max(1));
        let nq = seq_q.div_ceil(block.max(1));
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ nk as u64);
        let picks: Vec<Vec<usize>> = (0..nq)
            .map(|_| {
                let mut row: Vec<usize> = (0..random).map(|_| rng.random_range(0..nk.max(1))).collect();
                row.sort_unstable();
                row.dedup();
                row
            })
            .collect();
        let diag = Self::diag_fn(seq_q, seq_k, block);
        Self::from_fn(seq_q, seq_k, block, block, |r, c| {
            let d = diag(r);
            d < global || c < global || d.abs_diff(c) <= local || picks[r].binary_search(&c).is_ok()
        })
    }

    /// Sparse Transformer "strided": the previous `local` blocks plus every `stride`-th block
    /// column at or before the diagonal (causal).
    pub fn strided(seq_q: usize, seq_k: usize, block: usize, local: usize, stride: usize) -> Self {
        let diag = Self::diag_fn(seq_q, seq_k, block);
        let stride = stride.max(1);
        Self::from_fn(seq_q, seq_k, block, block, |r, c| {
            let d = diag(r);
            c <= d && (d - c <= local || (c + 1) % stride == 0)
        })
    }

    /// Block column of a block row's diagonal, bottom-right aligned.
    fn diag_fn(seq_q: usize, seq_k: usize, block: usize) -> impl Fn(usize) -> usize {
        let off = seq_k.saturating_sub(seq_q);
        let block = block.max(1);
        move |r| (r * block + off) / block
    }
}

//! Nsight-Compute-style counters: summing per-block counters, and the shared-memory bank model.

use crate::device::Counters;

pub fn add(a: &mut Counters, b: &Counters) {
    a.inst_arith += b.inst_arith;
    a.inst_memory += b.inst_memory;
    a.inst_tensor += b.inst_tensor;
    a.inst_control += b.inst_control;
    a.inst_sync += b.inst_sync;
    a.warp_instructions += b.warp_instructions;
    a.global_load_bytes += b.global_load_bytes;
    a.global_store_bytes += b.global_store_bytes;
    a.global_load_sectors += b.global_load_sectors;
    a.global_store_sectors += b.global_store_sectors;
    a.shared_requests += b.shared_requests;
    a.shared_wavefronts += b.shared_wavefronts;
    a.shared_bank_conflicts += b.shared_bank_conflicts;
    a.ldmatrix_instructions += b.ldmatrix_instructions;
    a.ldmatrix_wavefronts += b.ldmatrix_wavefronts;
    a.mma_instructions += b.mma_instructions;
    a.tensor_flops += b.tensor_flops;
    a.barriers += b.barriers;
    a.tma_load_bytes += b.tma_load_bytes;
    a.tma_store_bytes += b.tma_store_bytes;
    a.bulk_load_bytes += b.bulk_load_bytes;
    a.bulk_store_bytes += b.bulk_store_bytes;
    a.mbarrier_waits += b.mbarrier_waits;
    a.named_barrier_waits += b.named_barrier_waits;
    a.wgmma_instructions += b.wgmma_instructions;
}

/// Wavefronts of one warp-level shared request, given the 4-byte word addresses its lanes
/// touched (duplicates allowed, sorted and deduplicated here): the largest number of distinct
/// words that fall in one of the 32 banks, as Nsight counts
/// `l1tex__data_bank_conflicts_pipe_lsu_mem_shared`. Returns (wavefronts, ideal wavefronts),
/// ideal being the distinct words over 32 banks, rounded up.
pub fn bank_wavefronts(words: &mut Vec<u32>) -> (u64, u64) {
    if words.is_empty() {
        return (0, 0);
    }
    // Fast path: every word in its own bank (or repeats of one word per bank) is one wavefront.
    let mut seen = [u32::MAX; 32];
    let mut clash = false;
    for &w in words.iter() {
        let b = (w % 32) as usize;
        if seen[b] != u32::MAX && seen[b] != w {
            clash = true;
            break;
        }
        seen[b] = w;
    }
    if !clash {
        return (1, 1);
    }
    words.sort_unstable();
    words.dedup();
    let mut per_bank = [0u32; 32];
    for &w in words.iter() {
        per_bank[(w % 32) as usize] += 1;
    }
    let wf = *per_bank.iter().max().unwrap_or(&1) as u64;
    let ideal = (words.len() as u64).div_ceil(32);
    (wf.max(1), ideal.max(1))
}

/// Distinct 32-byte sectors among the sector indices touched by one warp-level request.
pub fn distinct(sectors: &mut Vec<u64>) -> u64 {
    sectors.sort_unstable();
    sectors.dedup();
    sectors.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_model() {
        // 32 lanes reading consecutive words: one wavefront.
        let mut w: Vec<u32> = (0..32).collect();
        assert_eq!(bank_wavefronts(&mut w), (1, 1));
        // stride 32 words: all in bank 0, 32 wavefronts.
        let mut w: Vec<u32> = (0..32).map(|i| i * 32).collect();
        assert_eq!(bank_wavefronts(&mut w), (32, 1));
        // broadcast: same word, one wavefront.
        let mut w = vec![7u32; 32];
        assert_eq!(bank_wavefronts(&mut w), (1, 1));
        // 16-byte vectors, contiguous: 128 words, 4 per bank.
        let mut w: Vec<u32> = (0..128).collect();
        assert_eq!(bank_wavefronts(&mut w), (4, 4));
    }
}

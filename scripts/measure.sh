#!/usr/bin/env bash
# One command on a GPU machine: the attnjoule sweep (flash, flash-hopper, decode, dense by
# default), a check that the PyTorch peers compute the same masked attention as attnjoule (peer
# script --check), the peers on the same shapes and masks with the same protocol, and the
# comparisons (tables, CSV, ratio plots), flash-hopper / flash among them.
#
#   scripts/measure.sh OUTDIR [shared flags]
#   scripts/measure.sh profiles/h100-run1 --ctx 1024,4096,16384,65536 --reps 5
#
# Shared flags are those both tools take with the same meaning: --ctx --ctx-min --ctx-max --phases
# --decode-tokens --mask --batch --heads --kv-heads --head-dim --min-seconds --reps --warmup
# --idle-seconds --seed. --mask takes the recipes both offer: none, causal, window:<keys>,
# longformer:<block>:<local>:<global> (bigbird, strided and csr have no peer; sweep them alone).
# ATTNJOULE=path/to/attnjoule picks the binary (default: cargo's release).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/measure.sh OUTDIR [shared flags]}"
shift
bin="${ATTNJOULE:-target/release/attnjoule}"
[ -x "$bin" ] || cargo build --release
mkdir -p "$out"
"$bin" sweep --out "$out" "$@"
if ! python3 -c "import torch" 2>/dev/null; then
  echo "PyTorch not importable: peers skipped (pip install torch pynvml, then rerun the peer script)"
elif ! python3 benches/peers/torch_attention.py --check --attnjoule "$bin" 2>&1 | tee "$out/peers-check.txt"; then
  # A peer that computes another mask than ours makes every ratio meaningless.
  echo "peer check found mismatches (see $out/peers-check.txt): peers not measured"
else
  python3 benches/peers/torch_attention.py --out "$out/peers.json" "$@"
  # SDPA's backends take no mask but none and causal; FlexAttention takes the windows and the
  # block-sparse (longformer) layouts too: each pair compares the points both measured.
  for pair in flash:sdpa_flash flash:sdpa_cudnn flash:flex flash-hopper:sdpa_cudnn flash-hopper:sdpa_flash \
    flash-hopper:flex decode:sdpa_flash decode:flex; do
    a="${pair%%:*}"; b="${pair##*:}"
    "$bin" compare "$out/profile.json" "$out/peers.json" --variant-a "$a" --variant-b "$b" \
      --csv "$out/$a-vs-$b.csv" --plot "$out/$a-vs-$b.svg" || echo "no common points for $a vs $b"
  done
fi
# Ours against ours: the Hopper prefill over the mma.sync baseline, every mask of the sweep.
"$bin" compare "$out/profile.json" "$out/profile.json" --variant-a flash-hopper --variant-b flash \
  --csv "$out/flash-hopper-vs-flash.csv" --plot "$out/flash-hopper-vs-flash.svg" ||
  echo "no common points for flash-hopper vs flash (sweep both: --variants flash,flash-hopper)"
ls -1 "$out"

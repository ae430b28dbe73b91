#!/usr/bin/env bash
# Builds what a GPU machine without cargo needs into carry/ (git-ignored, < 64 MiB): the release
# binary and the test executables that have GPU tests, debug info stripped, in one xz tarball, plus
# carry/run.sh that unpacks and runs them there.
#
#   scripts/gpu-bundle.sh            # here; then carry `carry` to the GPU machine
#   carry/run.sh OUTDIR tests        # there, from the repository root: every GPU test
#   carry/run.sh OUTDIR measure      # there: sweep + peer check + peers + comparisons
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf carry && mkdir -p carry/stage/tests
cargo build --release
cp target/release/attnjoule carry/stage/
cargo test --release --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys, shutil, os
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        name = m["target"]["name"] + ("-lib" if m["target"]["kind"] == ["lib"] else "")
        shutil.copy(m["executable"], os.path.join("carry/stage/tests", name))
'
# Only executables with #[ignore]d GPU tests travel (each embeds every kernel: ~28 MB unpacked).
keep="attnjoule-lib device_backends flash decode sweep"
for t in carry/stage/tests/*; do
  case " $keep " in *" $(basename "$t") "*) ;; *) rm "$t" ;; esac
done
strip --strip-debug carry/stage/attnjoule carry/stage/tests/*
tar -C carry/stage -cf - . | xz -T0 -6 > carry/bundle.tar.xz
rm -rf carry/stage
cat > carry/run.sh <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the repository root: unpacks the bundle, then
#   carry/run.sh OUTDIR tests     every GPU test (#[ignore]d without a GPU)
#   carry/run.sh OUTDIR measure   scripts/measure.sh: sweep, peer --check, peers, comparisons
#   carry/run.sh OUTDIR [all]     both (may need more than one 10-minute call: run them apart)
# Extra arguments after the mode go to scripts/measure.sh (default: 4 contexts, 3 reps).
set -uo pipefail
out="${1:-${OUT:-carry-out}}"; mode="${2:-all}"; shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$out"
bin=$(mktemp -d); tar -C "$bin" -xJf carry/bundle.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
if [ "$mode" = tests ] || [ "$mode" = all ]; then
  for t in "$bin"/tests/*; do
    echo "== $(basename "$t") --ignored" | tee -a "$out/tests.txt"
    "$t" --ignored --test-threads=1 2>&1 | tail -n 60 | tee -a "$out/tests.txt"
  done
fi
if [ "$mode" = measure ] || [ "$mode" = all ]; then
  [ $# -gt 0 ] || set -- --ctx 1024,4096,16384,65536 --reps 3 --min-seconds 0.5
  ATTNJOULE="$bin/attnjoule" scripts/measure.sh "$out/measure" "$@" 2>&1 | tail -n 80
fi
RUN
chmod +x carry/run.sh
du -sh carry carry/*

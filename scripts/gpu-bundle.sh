#!/usr/bin/env bash
# Builds what a GPU machine without cargo needs into carry/ (git-ignored, < 64 MiB): the release
# binary and the test executables that have GPU tests, debug info stripped, in one xz tarball, plus
# carry/run.sh that unpacks and runs them there.
#
#   scripts/gpu-bundle.sh            # here; then carry `carry` to the GPU machine
#   carry/run.sh OUTDIR              # there, from the repository root: GPU tests + a sweep
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
# On the GPU machine, from the repository root: unpacks the bundle, runs every GPU test, then a
# short sweep (time + NVML energy) into $1 (default $OUT).
set -uo pipefail
out="${1:-${OUT:-carry-out}}"; mkdir -p "$out"
bin=$(mktemp -d); tar -C "$bin" -xJf carry/bundle.tar.xz
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
for t in "$bin"/tests/*; do
  echo "== $(basename "$t") --ignored" | tee -a "$out/tests.txt"
  "$t" --ignored --test-threads=1 2>&1 | tail -n 60 | tee -a "$out/tests.txt"
done
"$bin/attnjoule" sweep --out "$out/sweep" --ctx 1024,4096,16384,65536 --reps 3 --min-seconds 0.5 2>&1 | tail -n 40
RUN
chmod +x carry/run.sh
du -sh carry carry/*

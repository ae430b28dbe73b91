#!/usr/bin/env bash
# Builds what a GPU machine without cargo needs into carry/ (git-ignored): the release binary and
# every test executable, plus carry/run.sh that runs them there.
#
#   scripts/gpu-bundle.sh            # then copy/carry `carry/` to the GPU machine
#   carry/run.sh OUTDIR              # on the GPU machine: GPU tests, all tests, a sweep
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf carry && mkdir -p carry/tests
cargo build --release
cp target/release/attnjoule carry/
cargo test --release --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys, shutil, os
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        name = m["target"]["name"] + ("-lib" if m["target"]["kind"] == ["lib"] else "")
        shutil.copy(m["executable"], os.path.join("carry/tests", name))
        print("carry/tests/" + name)
'
cp -r benches/peers carry/ 2>/dev/null || true
cat > carry/run.sh <<'RUN'
#!/usr/bin/env bash
# On the GPU machine, from the repository root: runs the GPU tests, then every test, logging to $1.
set -uo pipefail
out="${1:-${OUT:-carry-out}}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
for t in carry/tests/*; do
  echo "== $t --ignored" | tee -a "$out/tests.txt"
  "$t" --ignored --test-threads=1 2>&1 | tail -n 40 | tee -a "$out/tests.txt"
done
RUN
chmod +x carry/run.sh
du -sh carry

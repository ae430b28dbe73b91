#!/usr/bin/env bash
# Builds here what a GPU machine without cargo needs, into carry/ (git-ignored): bundle.tar.xz
# (the release binary and the test executables that hold GPU tests, debug info stripped, plus the
# run's scripts, the peer script and the Nsight section) and run.sh, which unpacks it there and
# starts scripts/gpu-run.sh. carry/ must stay under 40 MiB (checked here; the lent machine takes
# 64 MiB of working tree in all). Honours CARGO_TARGET_DIR (the executables' paths come from cargo).
#
#   scripts/gpu-bundle.sh        here; then carry `carry` to the GPU machine
#   carry/run.sh OUTDIR          there: the prepared run (scripts/gpu-run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((40 * 1024 * 1024))
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin/tests" "$stage/scripts" "$stage/benches/peers" "$stage/profiles/ncu"

# cargo's own report of what it built: the executables' paths wherever the target folder is.
artifacts() {
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        t = m["target"]
        name = t["name"] + ("-lib" if t["kind"] == ["lib"] else "")
        print("test" if m["profile"]["test"] else "bin", name, m["executable"], sep="\t")
'
}
cargo build --release --bin attnjoule --message-format=json-render-diagnostics | artifacts >"$stage/built.tsv"
cargo test --release --no-run --message-format=json-render-diagnostics | artifacts >>"$stage/built.tsv"
bin=$(awk -F'\t' '$1 == "bin" && $2 == "attnjoule" { print $3 }' "$stage/built.tsv" | tail -n 1)
[ -x "$bin" ] || { echo "error: cargo reported no attnjoule executable" >&2; exit 1; }
cp "$bin" "$stage/bin/attnjoule"
# Only test executables with GPU tests travel (each embeds every kernel): those whose ignored
# tests include one marked "needs a CUDA GPU" in the sources they were built from.
while IFS=$'\t' read -r kind name exe; do
  [ "$kind" = test ] || continue
  ignored=$("$exe" --ignored --list 2>/dev/null || true) # whole, not piped: grep -q would cut it short
  if grep -q ': test$' <<<"$ignored"; then
    src=$([ "$name" = attnjoule-lib ] && echo src || echo "tests/$name.rs")
    if grep -rqs 'needs a CUDA GPU' $src; then
      cp "$exe" "$stage/bin/tests/$name"
    fi
  fi
done <"$stage/built.tsv"
strip --strip-debug "$stage/bin/attnjoule" "$stage"/bin/tests/*
cp scripts/gpu-run.sh scripts/gpu_ceilings.py "$stage/scripts/"
cp benches/peers/torch_attention.py "$stage/benches/peers/"
cp profiles/ncu/*.section "$stage/profiles/ncu/"
rm -f "$stage/built.tsv"

rm -rf carry && mkdir -p carry
# One xz stream with a dictionary larger than a test executable (~55 MB stripped): every executable
# embeds the same kernel modules, and a window that spans two of them stores those bytes once
# (44 MiB with xz's default 8 MiB window, about a sixth of that with this one). Single-threaded:
# threads would cut the stream into blocks and lose the repeats. Unpacking needs ~200 MiB of memory.
tar -C "$stage" -cf - . | xz -T1 --lzma2=preset=6,dict=192MiB >carry/bundle.tar.xz
cat >carry/run.sh <<'RUN'
#!/usr/bin/env bash
# On the GPU machine: unpacks bundle.tar.xz (once per bundle) and starts its scripts/gpu-run.sh:
#   carry/run.sh OUTDIR [--resume-from attnjoule-gpu-run.tar.xz]
#   carry/run.sh --dry-run
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${ATTNJOULE_UNPACK:-/tmp/attnjoule-carry}
stamp=$(cksum <"$here/bundle.tar.xz")
if [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  tar -C "$dir" -xJf "$here/bundle.tar.xz"
  echo "$stamp" >"$dir/.stamp"
fi
exec "$dir/scripts/gpu-run.sh" "$@"
RUN
chmod +x carry/run.sh
size=$(du -sb carry | cut -f1)
echo "carry/: $(ls carry | tr '\n' ' ')- $((size / 1024 / 1024)) MiB ($size bytes); tests: $(ls "$stage/bin/tests" | tr '\n' ' ')"
if [ "$size" -gt "$limit" ]; then
  echo "error: carry/ is $size bytes, over its $limit-byte limit (the lent machine takes 64 MiB of working tree)" >&2
  exit 1
fi

#!/usr/bin/env bash
# The prepared GPU run: one command on a lent GPU machine (no cargo, no network) that prints the
# GPU, driver and clocks, measures the two ceilings (copy bandwidth, cuBLAS bf16 GEMM), runs the
# GPU tests, a compact sweep, the peer check and the PyTorch peers on the same points, and packs
# everything into OUTDIR/attnjoule-gpu-run.tar.xz plus OUTDIR/summary.md (two flat files, each
# under 16 MiB), printing the summary's table last. The steps, their points and their estimated
# GPU time come from `attnjoule gpu-run plan` (the dry run, no GPU needed): planned to end within
# 6 minutes on an H200. A second call continues where the first stopped.
#
#   scripts/gpu-run.sh --dry-run               here: the plan and its estimate (fails over budget)
#   carry/run.sh OUTDIR                        there (carry/ is built here by scripts/gpu-bundle.sh)
#   carry/run.sh OUTDIR --resume-from FILE     continue on a fresh machine: FILE is the
#                                              attnjoule-gpu-run.tar.xz an earlier call returned
#   scripts/gpu-run.sh --pack WORK OUTDIR      only pack a work folder (the tests use it)
#
# Environment: ATTNJOULE_WORK (the work folder; default /tmp/attnjoule-gpu-run, kept while the
# machine stays, so a second call there resumes), ATTNJOULE_DEADLINE_S (default 360: no step
# starts after it and a running one is stopped at it; the folder is packed after every step, so
# a run killed from outside still returns what it finished), ATTNJOULE and ATTNJOULE_TESTS (the
# binary and the test executables; default the bundle's bin/), PYTHON (default python3),
# ATTNJOULE_PLAN (a file of steps to run instead of the binary's plan) and ATTNJOULE_PACK_MAX_BYTES
# (a smaller pack limit), both for tests.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$here")
PY=${PYTHON:-python3}
PACK=attnjoule-gpu-run.tar.xz
MAX_BYTES=${ATTNJOULE_PACK_MAX_BYTES:-$((15 * 1024 * 1024))} # under the 16 MiB a returned file may have
LOG_BYTES=$((1024 * 1024))      # per step log: its head and tail are kept
export ROOT PY

find_bin() {
  if [ -n "${ATTNJOULE:-}" ]; then
    BIN=$ATTNJOULE
  elif [ -x "$ROOT/bin/attnjoule" ]; then
    BIN=$ROOT/bin/attnjoule
  else
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/attnjoule
  fi
  TESTS=${ATTNJOULE_TESTS:-$ROOT/bin/tests}
  export BIN TESTS
}

# pack WORK OUT: OUT/attnjoule-gpu-run.tar.xz and OUT/summary.md, nothing else, each at most
# MAX_BYTES (plots and Nsight reports are dropped first, then the logs, when the pack is larger).
pack() {
  local work=$1 out=$2
  mkdir -p "$out" || return 1
  local tmp=$out/$PACK.part attempt size
  for attempt in all no-plots no-logs; do
    local excl=()
    case $attempt in
      no-plots) excl=(--exclude='*.svg' --exclude='*.ncu-rep') ;;
      no-logs) excl=(--exclude='*.svg' --exclude='*.ncu-rep' --exclude='./logs' --exclude='*.jsonl') ;;
    esac
    if [ "$attempt" != all ]; then
      echo "packing: the full pack exceeded $MAX_BYTES bytes; left out: ${excl[*]}" >"$work/packing-note.txt"
    fi
    tar -C "$work" "${excl[@]}" -cf - . 2>/dev/null | xz -T0 -6 >"$tmp"
    size=$(stat -c %s "$tmp" 2>/dev/null || echo 0)
    [ "$size" -gt 0 ] && [ "$size" -le "$MAX_BYTES" ] && break
  done
  if [ "$size" -gt "$MAX_BYTES" ] || [ "$size" -eq 0 ]; then
    echo "packing: even without plots and logs the pack exceeded $MAX_BYTES bytes; only the summaries kept" \
      >"$work/packing-note.txt"
    local keep
    for keep in "summary.md steps.tsv packing-note.txt sweep/profile.json" "summary.md steps.tsv packing-note.txt"; do
      # shellcheck disable=SC2086 # the lists are words
      (cd "$work" && tar -cf - $keep 2>/dev/null) | xz >"$tmp"
      [ "$(stat -c %s "$tmp")" -le "$MAX_BYTES" ] && break
    done
  fi
  mv -f "$tmp" "$out/$PACK"
  if [ -f "$work/summary.md" ]; then
    head -c "$MAX_BYTES" "$work/summary.md" >"$out/summary.md"
  fi
}

# Keeps the head and tail of a log longer than LOG_BYTES.
cap_log() {
  local f=$1
  if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt "$LOG_BYTES" ]; then
    { head -c $((LOG_BYTES / 4)); printf '\n[... cut: the log was longer than %s bytes ...]\n' "$LOG_BYTES"; } <"$f" >"$f.cut"
    tail -c $((LOG_BYTES * 3 / 4)) "$f" >>"$f.cut"
    mv -f "$f.cut" "$f"
  fi
}

if [ "${1:-}" = --pack ]; then
  [ $# -eq 3 ] || { echo "usage: scripts/gpu-run.sh --pack WORK OUTDIR" >&2; exit 2; }
  pack "$2" "$3"
  exit $?
fi

find_bin
if [ "${1:-}" = --dry-run ]; then
  shift
  if ! "$BIN" --version >/dev/null 2>&1; then
    echo "error: no attnjoule binary at $BIN (cargo build --release, or set ATTNJOULE)" >&2
    exit 2
  fi
  exec "$BIN" gpu-run plan "$@"
fi

out=${1:?usage: carry/run.sh OUTDIR [--resume-from FILE] (or scripts/gpu-run.sh --dry-run)}
shift
resume_from=
if [ "${1:-}" = --resume-from ]; then
  resume_from=${2:?--resume-from needs the attnjoule-gpu-run.tar.xz of an earlier call}
  shift 2
fi
W=${ATTNJOULE_WORK:-/tmp/attnjoule-gpu-run}
export W
deadline=${ATTNJOULE_DEADLINE_S:-360}
start=$SECONDS
mkdir -p "$W/logs" "$W/done" "$W/peers" "$out"
if [ -n "$resume_from" ] && [ ! -s "$W/steps.tsv" ]; then
  tar -C "$W" -xJf "$resume_from" || { echo "error: cannot unpack $resume_from" >&2; exit 2; }
  echo "resuming from $resume_from: $(ls "$W/done" | wc -l) steps done"
fi

finish() { # the summary (the table last) and the final pack
  if "$BIN" gpu-run summary "$W" >"$W/summary.txt" 2>"$W/logs/summary.log"; then
    pack "$W" "$out"
    echo
    cat "$W/summary.md"
  else
    pack "$W" "$out"
    echo "summary failed: $(tail -n 3 "$W/logs/summary.log")"
  fi
}

# ---- preflight: the binaries built elsewhere must start here (glibc and libraries may differ)
echo "== attnjoule gpu-run: $(date -u +%FT%TZ), work folder $W, deadline ${deadline} s"
if ! msg=$("$BIN" --version 2>&1); then
  {
    echo "# attnjoule GPU run: the attnjoule binary cannot start on this machine"
    echo
    echo "- binary: $BIN"
    echo "- error: $(echo "$msg" | head -n 3 | tr '\n' ' ')"
    echo "- glibc here: $(ldd --version 2>&1 | head -n 1)"
    echo "- needed: build the bundle on a machine whose glibc is not newer than this one's (scripts/gpu-bundle.sh)"
  } | tee "$W/summary.md"
  pack "$W" "$out"
  exit 3
fi
echo "$msg"
# cudarc loads cuBLAS by name at run time (the GEMM calibration): when the loader does not know
# it, add where CUDA or torch's wheels keep it. Python steps keep the environment they came with.
PY_LD=${LD_LIBRARY_PATH:-}
export PY_LD
if ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so'; then
  sites=$("$PY" -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null)
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $(for s in $sites; do echo "$s"/nvidia/*/lib; done); do
    if compgen -G "$d/libcublas.so*" >/dev/null; then
      LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
      echo "cuBLAS for attnjoule from $d"
      break
    fi
  done
  export LD_LIBRARY_PATH
fi
: >"$W/preflight.txt"
for t in "$TESTS"/*; do
  [ -x "$t" ] || continue
  if ! m=$("$t" --list 2>&1 >/dev/null); then
    echo "WARNING: test executable $(basename "$t") cannot start here: $(echo "$m" | head -n 1)" | tee -a "$W/preflight.txt"
  fi
done
[ -d "$TESTS" ] || echo "WARNING: no test executables at $TESTS (GPU tests will fail)" | tee -a "$W/preflight.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.limit,temperature.gpu,pstate \
  --format=csv >"$W/gpu.txt" 2>&1 || echo "WARNING: nvidia-smi failed" | tee -a "$W/preflight.txt"
cat "$W/gpu.txt"
"$BIN" info >"$W/info.txt" 2>&1 || echo "WARNING: attnjoule info failed (see info.txt)" | tee -a "$W/preflight.txt"
grep -iE "gpu|nvml|driver" "$W/info.txt" | head -n 6
"$BIN" gpu-run plan --points >"$W/plan.txt" 2>&1
if [ -n "${ATTNJOULE_PLAN:-}" ]; then
  cp "$ATTNJOULE_PLAN" "$W/steps-plan.tsv" # the tests' fake plan (lines as `gpu-run steps` prints them)
elif ! "$BIN" gpu-run steps >"$W/steps-plan.tsv" 2>"$W/logs/plan.log"; then
  echo "error: the plan could not be listed: $(cat "$W/logs/plan.log")"
  finish
  exit 2
fi

left() { echo $((deadline - (SECONDS - start))); }

# run_step NAME CAP EST CMD: runs CMD (bash) under a time limit, logs, records the status.
# Stopped by the deadline: "cut" (not done; the next call runs it again). Stopped by its own cap:
# "timeout" (done). A failure is a result: recorded, done.
run_step() {
  local name=$1 cap=$2 est=$3 cmd=$4 t0=$SECONDS lim rc status
  lim=$(left)
  [ "$lim" -gt "$cap" ] && lim=$cap
  [ "$lim" -ge 1 ] || lim=1 # timeout 0 would mean no limit
  echo "-- $name (limit ${lim} s, estimate ${est} s)"
  timeout --kill-after=5 "$lim" bash -c "$cmd" >"$W/logs/$name.log" 2>&1
  rc=$?
  cap_log "$W/logs/$name.log"
  case $rc in
    0) status=ok ;;
    124 | 137) if [ "$lim" -lt "$cap" ]; then status=cut; else status=timeout; fi ;;
    *) status="failed(rc=$rc)" ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" $((SECONDS - t0)) "$est" >>"$W/steps.tsv"
  [ "$status" = cut ] || touch "$W/done/$name"
  echo "   $name: $status in $((SECONDS - t0)) s; $(tail -n 1 "$W/logs/$name.log" | cut -c1-150)"
}

skip() { # skip NAME EST WHY: recorded, done
  printf '%s\t%s\t0\t%s\n' "$1" "skipped: $3" "$2" >>"$W/steps.tsv"
  touch "$W/done/$1"
  echo "-- $1: skipped ($3)"
}

bg_pids=()
while IFS=$'\t' read -r name mode cap est cmd; do
  [ -e "$W/done/$name" ] && continue
  if [ "$mode" = join ] && [ ${#bg_pids[@]} -gt 0 ]; then
    echo "-- waiting for the background steps"
    wait "${bg_pids[@]}"
    bg_pids=()
    pack "$W" "$out"
  fi
  if [ "$(left)" -le 0 ]; then
    echo "-- deadline reached: $name and what follows are left for the next call"
    break
  fi
  if [ "$mode" = opt ] && [ "$(left)" -lt "$est" ]; then
    echo "-- $name: not started (optional; ${est} s estimated, $(left) s left)"
    continue
  fi
  case $name in
    peers-*)
      if [ ! -e "$W/done/peer-check" ]; then
        echo "-- $name: waits for the peer check (next call)"
        continue
      fi
      if ! awk -F'\t' '$1 == "peer-check" { s = $2 } END { exit s != "ok" }' "$W/steps.tsv"; then
        # A ratio to a peer that computes another mask would mean nothing.
        skip "$name" "$est" "the peer check did not pass (logs/peer-check.log)"
        continue
      fi
      ;;
    ncu-*)
      if ! command -v ncu >/dev/null; then
        skip "$name" "$est" "no ncu on this machine"
        continue
      fi
      ;;
  esac
  if [ "$mode" = bg ]; then
    run_step "$name" "$cap" "$est" "$cmd" &
    bg_pids+=($!)
    continue
  fi
  run_step "$name" "$cap" "$est" "$cmd"
  pack "$W" "$out"
done <"$W/steps-plan.tsv"
[ ${#bg_pids[@]} -gt 0 ] && wait "${bg_pids[@]}"
left_steps=$(cut -f1 "$W/steps-plan.tsv" | while read -r n; do [ -e "$W/done/$n" ] || echo "$n"; done | tr '\n' ' ')
echo "== $((SECONDS - start)) s; steps left for a next call: ${left_steps:-none}"
finish

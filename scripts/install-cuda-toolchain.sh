#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 compiler (nvcc, ptxas, headers), cuobjdump/nvdisasm and libclang
# from NVIDIA's and LLVM's PyPI wheels into a per-user cache folder. No root, no system CUDA.
#
#   scripts/install-cuda-toolchain.sh          # installs (idempotent), prints the prefix
#
# Prefix: $ATTNJOULE_TOOLCHAIN_DIR, else ${XDG_CACHE_HOME:-~/.cache}/attnjoule/cuda-13.0
set -euo pipefail

prefix="${ATTNJOULE_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/attnjoule/cuda-13.0}"
stamp="$prefix/.installed-v1"
# The exact pins. 13.0 matches the H100 machines' driver 580 (CUDA 13.0): PTX of a newer ISA
# would not JIT there. cuobjdump/nvdisasm have no 13.0 wheel; a newer 13.x reads 13.0 cubins.
pkgs=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-cuobjdump==13.5.37"
  "nvidia-cuda-nvdisasm==13.5.37"
  "libclang==18.1.1"
)

if [ -f "$stamp" ]; then echo "$prefix"; exit 0; fi

mkdir -p "$(dirname "$prefix")"
# Two builds (cargo build + cargo test in parallel) may race here: one installs, the other waits.
exec 9>"$prefix.lock"
flock 9
if [ -f "$stamp" ]; then echo "$prefix"; exit 0; fi

py="${PYTHON:-$(command -v python3 || command -v python || true)}"
if [ -z "$py" ]; then
  echo "attnjoule: python3 with pip is needed to install the CUDA toolchain (or set NVCC / CUDA_HOME)" >&2
  exit 1
fi

tmp="$prefix.tmp.$$"
rm -rf "$tmp"
echo "attnjoule: installing CUDA 13.0 toolchain from PyPI into $prefix (one time, ~1 GB)" >&2
"$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --target "$tmp" "${pkgs[@]}" >&2

cu="$tmp/nvidia/cu13"
# Some wheels lay tools out under different roots; gather them under cu13/{bin,nvvm} and make
# sure every binary is executable (wheels lose the mode bit on some pip versions).
for tool in nvcc ptxas fatbinary nvlink cuobjdump nvdisasm cudafe++ bin2c; do
  f=$(find "$tmp" -type f -name "$tool" -path "*/bin/*" | head -n 1)
  if [ -n "$f" ]; then
    mkdir -p "$cu/bin"
    [ "$f" = "$cu/bin/$tool" ] || cp "$f" "$cu/bin/$tool"
    chmod +x "$cu/bin/$tool"
  fi
done
find "$tmp" -path "*/nvvm/bin/*" -type f -exec chmod +x {} +
[ -x "$cu/bin/nvcc" ] || { echo "attnjoule: nvcc missing after install in $tmp" >&2; exit 1; }

rm -rf "$prefix"
mv "$tmp" "$prefix"
touch "$stamp"
echo "$prefix"

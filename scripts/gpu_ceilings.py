#!/usr/bin/env python3
"""The two ceilings of a GPU, measured first in a run (scripts/gpu-run.sh): device-to-device copy
bandwidth (bytes read plus bytes written) and a large bf16 matrix product through cuBLAS (torch's
matmul), each the median of timed repetitions after warm-ups, on random data (zeros run faster).
Also the GPU, driver and clocks before and after. Writes JSON (--out) and prints one line each.

    python3 scripts/gpu_ceilings.py --out ceilings.json
"""

import argparse
import json
import subprocess
import sys


def smi(fields):
    """nvidia-smi's values for these query fields, or None."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                             check=True, capture_output=True, text=True, timeout=20).stdout
        return out.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def timed(torch, fn, warmup, reps):
    """Median seconds of `fn` over `reps` calls, each between two CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="ceilings.json")
    p.add_argument("--copy-gib", type=float, default=2.0, help="size of the copied buffer (GiB)")
    p.add_argument("--gemm-n", type=int, default=8192, help="n of the n x n x n bf16 product")
    p.add_argument("--reps", type=int, default=20)
    a = p.parse_args()
    clocks = "clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.draw,temperature.gpu,pstate"
    before = smi(clocks)
    result = {"clocks_fields": clocks, "clocks_before": before}
    try:
        import torch
    except ImportError as e:
        result["error"] = f"torch not importable: {e}"
        print(f"ceilings: {result['error']}", file=sys.stderr)
        json.dump(result, open(a.out, "w"), indent=1)
        return 1
    if not torch.cuda.is_available():
        result["error"] = "torch sees no CUDA GPU"
        print(f"ceilings: {result['error']}", file=sys.stderr)
        json.dump(result, open(a.out, "w"), indent=1)
        return 1
    props = torch.cuda.get_device_properties(0)
    result.update(gpu=props.name, sm_count=props.multi_processor_count, memory_bytes=props.total_memory,
                  torch=torch.__version__, cuda=torch.version.cuda, driver=smi("driver_version"),
                  library=f"torch {torch.__version__} matmul (cuBLAS)")
    print(f"GPU: {props.name}, {props.multi_processor_count} SMs, {props.total_memory / 2**30:.1f} GiB, "
          f"driver {result['driver']}, torch {torch.__version__} (CUDA {torch.version.cuda})")
    print(f"clocks before ({clocks}): {before}")

    n = int(a.copy_gib * 2**30) // 2
    src = torch.empty(n, dtype=torch.bfloat16, device="cuda").uniform_(-1, 1)
    dst = torch.empty_like(src)
    s = timed(torch, lambda: dst.copy_(src), 3, a.reps)
    result["copy_bytes"] = 2 * 2 * n
    result["copy_gbps"] = 2 * 2 * n / s / 1e9
    print(f"copy: {2 * n / 2**30:.1f} GiB device to device in {s * 1e3:.3f} ms: "
          f"{result['copy_gbps']:.0f} GB/s (read + written)")
    del src, dst

    m = a.gemm_n
    x = torch.empty(m, m, dtype=torch.bfloat16, device="cuda").uniform_(-1, 1)
    y = torch.empty(m, m, dtype=torch.bfloat16, device="cuda").uniform_(-1, 1)
    z = torch.empty(m, m, dtype=torch.bfloat16, device="cuda")
    s = timed(torch, lambda: torch.matmul(x, y, out=z), 3, a.reps)
    result["gemm_n"] = m
    result["gemm_tflops"] = 2.0 * m ** 3 / s / 1e12
    print(f"bf16 GEMM {m}^3: {s * 1e3:.3f} ms: {result['gemm_tflops']:.0f} TFLOP/s")
    torch.cuda.synchronize()
    after = smi(clocks)
    result["clocks_after"] = after
    result["clocks"] = f"{clocks}: before {before}; right after the GEMMs {after}"
    print(f"clocks after: {after}")
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

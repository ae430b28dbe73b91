#!/usr/bin/env python3
"""Peer baseline: PyTorch attention measured with attnjoule's protocol, written as an attnjoule
profile (schema v2) so that `attnjoule compare ours.json peers.json` prints ours / peer per point.

Implementations (variant names in the profile; implementation = "torch-<version>"):
  sdpa_flash, sdpa_efficient, sdpa_cudnn  scaled_dot_product_attention pinned to one backend
                                          (torch.nn.attention.sdpa_kernel); masks: none, causal
  sdpa_math                               the same, math backend (materialized scores; not in the
                                          default list: the dense baseline of PyTorch)
  flex                                    FlexAttention with block masks; masks: none, causal,
                                          window:<keys>, longformer:<block>:<local>:<global>

Masks are spelled as attnjoule's mask recipes (src/mask/recipe.rs) and recorded in that spelling, so
a peer point and an attnjoule point of the same mask have the same key.

Protocol (the same as `attnjoule sweep`): warm up, timing each warm-up call with CUDA events;
launch back to back until a window lasts >= --min-seconds; --reps windows with random idle gaps;
rotate input sets so that 50 MB of L2 never holds them; energy from NVML's total-energy counter
(pynvml) when present, else integrated power samples (pynvml or torch.cuda.power_draw) every 10 ms;
idle baseline before the first point. Masks are bottom-right aligned like attnjoule's.

    python3 benches/peers/torch_attention.py --check
    python3 benches/peers/torch_attention.py --ctx 1024,4096,16384,65536 --out profiles/peers.json
    attnjoule compare profiles/<gpu>-<date>/profile.json profiles/peers.json \\
        --variant-a flash --variant-b sdpa_flash --plot flash-vs-sdpa.svg

--check runs every implementation exactly as measured (same call, same mask construction) on
small shapes, including GQA, decode steps and lengths that are not multiples of a block, and
compares its output with a float64 reference whose visible keys per row come from
`attnjoule mask --json --rows`: a ratio ours / peer is only meaningful if both compute the same
masked attention. --cpu runs on the CPU (no GPU, no energy: a dry run of the protocol and the
output format, and --check in float32).
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import subprocess
import sys
import threading
import time
import warnings

L2_BYTES = 50 * 1024 * 1024  # where the device does not say (H100 SXM); attnjoule's DEFAULT_L2_BYTES
GIB = 1024.0 ** 3



def gap_arg(text):
    """--gap MIN:MAX (or one value) in seconds, 0 <= MIN <= MAX <= 60, as attnjoule's sweep takes it."""
    import argparse
    try:
        lo, hi = (float(x) for x in text.split(":")) if ":" in text else (float(text),) * 2
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: MIN:MAX seconds")
    if not (0.0 <= lo <= hi <= 60.0):
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX <= 60 seconds")
    return (lo, hi)

def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impls", default="sdpa_flash,sdpa_efficient,sdpa_cudnn,flex",
                   help="comma list of sdpa_flash, sdpa_efficient, sdpa_cudnn, sdpa_math, flex")
    p.add_argument("--phases", default="prefill,decode")
    p.add_argument("--ctx", default="", help="comma list; default powers of two --ctx-min..--ctx-max")
    p.add_argument("--ctx-min", type=int, default=1024)
    p.add_argument("--ctx-max", type=int, default=1 << 20)
    p.add_argument("--decode-tokens", default="1")
    p.add_argument("--mask", default="causal",
                   help="comma list of mask recipes: none, causal, window:<keys>, longformer:<block>:<local>:<global>")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=1)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--idle-seconds", type=float, default=3.0)
    p.add_argument("--gap", type=gap_arg, default=(0.2, 0.6),
                   help="idle gap before each window, uniform in MIN:MAX seconds (as attnjoule sweep --gap)")
    p.add_argument("--device", type=int, default=0, help="CUDA ordinal")
    p.add_argument("--cpu", action="store_true", help="run on the CPU: no GPU, no energy (dry run, or --check)")
    p.add_argument("--check", action="store_true",
                   help="compare every implementation's output with a float64 reference on small shapes, then exit")
    p.add_argument("--attnjoule", default=os.environ.get("ATTNJOULE", "target/release/attnjoule"),
                   help="attnjoule binary whose `mask --json --rows` defines the masks (--check)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default="peers.json")
    return p.parse_args()


# ---------------------------------------------------------------- masks and work counts

PEER_MASKS = "none, causal, window:<keys>, longformer:<block>:<local>:<global>"


def parse_mask(s):
    """A mask recipe as attnjoule spells it (the same rules: digits only, window and block >= 1):
    {"recipe": its canonical spelling, "kind", and the parameters}. attnjoule's other recipes
    (bigbird, strided, csr) have no peer here."""
    name, _, rest = s.partition(":")
    fields = rest.split(":") if rest else []
    arity = {"none": 0, "causal": 0, "window": 1, "longformer": 3}
    if name not in arity:
        sys.exit(f"mask {s!r}: the peer script offers {PEER_MASKS}")
    if len(fields) != arity[name] or not all(f.isascii() and f.isdigit() for f in fields):
        sys.exit(f"mask {s!r}: expected one of {PEER_MASKS} (non-negative integers)")
    n = [int(f) for f in fields]
    if name == "window":
        if n[0] < 1:
            sys.exit(f"mask {s!r}: window must be at least 1")
        return {"recipe": f"window:{n[0]}", "kind": "window", "keys": n[0]}
    if name == "longformer":
        if n[0] < 1:
            sys.exit(f"mask {s!r}: block must be at least 1")
        return {"recipe": "longformer:{}:{}:{}".format(*n), "kind": "longformer", "block": n[0], "local": n[1],
                "global": n[2]}
    return {"recipe": name, "kind": name}


def key_range(mask, i, sq, sk):
    """Visible keys [lo, hi) of query row i (bottom-right aligned), for non-block masks."""
    off = sk - sq
    if mask["kind"] == "none":
        return 0, sk
    if mask["kind"] == "causal":
        return 0, min(i + off + 1, sk)
    w = mask["keys"]
    return max(0, i + off - (w - 1)), min(i + off + 1, sk)


def longformer_cols(r, nk, block, local, glob, off):
    """Key-block columns of block row r as disjoint [c0, c1) ranges: the rule of attnjoule's
    BlockLayout::longformer (rows whose bottom-right-aligned diagonal lies in the first `glob`
    blocks see all; every row sees the global columns and `local` blocks either side of its
    diagonal). Closed form: at 1M tokens a materialized layout would be 67M Python booleans."""
    d = r + off // block  # == (r * block + off) // block
    if d < glob:
        return [(0, nk)]
    out = []
    for a, b in sorted(x for x in ((0, min(glob, nk)), (max(0, d - local), min(nk, d + local + 1))) if x[0] < x[1]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def longformer_params(mask):
    return mask["block"], mask["local"], mask["global"]


def visible(mask, sq, sk):
    """(visible pairs, keys visible to some query)."""
    if mask["kind"] == "longformer":
        b, local, glob = longformer_params(mask)
        nq, nk, off = -(-sq // b), -(-sk // b), max(sk - sq, 0)
        width = lambda c0, c1: min(c1 * b, sk) - c0 * b  # noqa: E731
        pairs, seen = 0, []
        for r in range(nq):
            cols = longformer_cols(r, nk, b, local, glob, off)
            pairs += min(b, sq - r * b) * sum(width(c0, c1) for c0, c1 in cols)
            seen += cols
        keys, end = 0, 0
        for c0, c1 in sorted(seen):  # union of the column ranges
            c0 = max(c0, end)
            if c0 < c1:
                keys += width(c0, c1)
                end = c1
        return pairs, keys
    pairs, lo_all, hi_all = 0, sk, 0
    for i in range(sq) if sq <= 4096 else ():
        lo, hi = key_range(mask, i, sq, sk)
        pairs += max(0, hi - lo)
        lo_all, hi_all = min(lo_all, lo), max(hi_all, hi)
    if sq > 4096:  # closed forms for long prefill
        off = sk - sq
        if mask["kind"] == "none":
            pairs = sq * sk
        elif mask["kind"] == "causal":
            pairs = sum(min(i + off + 1, sk) for i in range(0, sq))
        else:
            pairs = sum(max(0, min(i + off + 1, sk) - max(0, i + off - mask["keys"] + 1)) for i in range(sq))
        lo_all, hi_all = 0, sk
    return pairs, max(0, hi_all - lo_all)


def work(mask, b, sq, sk, h, hk, d):
    pairs, keys = visible(mask, sq, sk)
    flops = 4.0 * d * b * h * pairs
    q_o_lse = 2.0 * b * sq * h * d * 2 + b * h * sq * 4
    return flops, q_o_lse + 2.0 * b * keys * hk * d * 2


# ---------------------------------------------------------------- clocks and energy

class Clock:
    """Times enqueued work: CUDA events on a GPU, the host clock on the CPU (--cpu)."""

    def __init__(self, torch, cuda):
        self.torch, self.cuda = torch, cuda

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def start(self):
        if self.cuda:
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def seconds_since(self, mark):
        if self.cuda:
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record()
            ev.synchronize()
            return mark.elapsed_time(ev) / 1e3
        return time.perf_counter() - mark


class Meter:
    """NVML total-energy counter when available, else integrated power samples; nothing on --cpu."""

    def __init__(self, torch, index, cuda=True):
        self.torch, self.index, self.cuda = torch, index, cuda
        self.nvml, self.handle, self.counter = None, None, False
        self.samples, self.stop = [], False
        if not cuda:
            return
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
                self.counter = True
            except pynvml.NVMLError:
                pass
        except Exception:  # no pynvml: torch's power API (which itself needs NVML)
            pass
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def power_w(self):
        if self.handle is not None:
            return self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        return self.torch.cuda.power_draw(self.index) / 1000.0

    def _sample(self):
        nxt = time.perf_counter()
        while not self.stop:
            try:
                self.samples.append((time.perf_counter(), self.power_w()))
            except Exception:
                pass
            if len(self.samples) > 60000:
                del self.samples[:10000]
            nxt += 0.01
            time.sleep(max(0.0, nxt - time.perf_counter()))

    def begin(self):
        e = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) if self.counter else None
        return time.perf_counter(), e

    def end(self, mark):
        """(joules or None, wall seconds, method)."""
        t0, e0 = mark
        t1 = time.perf_counter()
        if not self.cuda:
            return None, t1 - t0, "none"
        if self.counter:
            e1 = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            if e1 > e0:
                return (e1 - e0) / 1000.0, t1 - t0, "counter"
        s = [x for x in list(self.samples) if t0 <= x[0] <= t1]
        if len(s) < 2:
            raise RuntimeError("no energy counter and too few power samples; raise --min-seconds")
        j = s[0][1] * (s[0][0] - t0) + s[-1][1] * (t1 - s[-1][0])
        j += sum(0.5 * (a[1] + b[1]) * (b[0] - a[0]) for a, b in zip(s, s[1:]))
        return j, t1 - t0, "sampled_power"

    def state(self):
        st = {"sm_clock_mhz": None, "mem_clock_mhz": None, "temperature_c": None, "power_w": None,
              "throttle_reasons": []}
        if self.handle is None:
            return st
        n = self.nvml
        try:
            st["sm_clock_mhz"] = n.nvmlDeviceGetClockInfo(self.handle, n.NVML_CLOCK_SM)
            st["mem_clock_mhz"] = n.nvmlDeviceGetClockInfo(self.handle, n.NVML_CLOCK_MEM)
            st["temperature_c"] = n.nvmlDeviceGetTemperature(self.handle, n.NVML_TEMPERATURE_GPU)
            st["power_w"] = self.power_w()
            r = n.nvmlDeviceGetCurrentClocksThrottleReasons(self.handle)
            names = {"gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4,
                     "hw_slowdown": 0x8, "sync_boost": 0x10, "sw_thermal_slowdown": 0x20,
                     "hw_thermal_slowdown": 0x40, "hw_power_brake_slowdown": 0x80,
                     "display_clock_setting": 0x100}
            st["throttle_reasons"] = [k for k, v in names.items() if r & v]
        except Exception:
            pass
        return st

    def gpu_info(self):
        t = self.torch
        if not self.cuda:
            return {"name": f"CPU {platform.machine()} (--cpu dry run, not a GPU)", "uuid": None, "driver": None,
                    "cuda": None, "sm_count": None, "memory_bytes": None, "power_limit_w": None,
                    "sm_clock_mhz": None, "mem_clock_mhz": None}
        info = {"name": t.cuda.get_device_name(self.index), "uuid": None, "driver": None,
                "cuda": t.version.cuda, "sm_count": t.cuda.get_device_properties(self.index).multi_processor_count,
                "memory_bytes": t.cuda.get_device_properties(self.index).total_memory,
                "power_limit_w": None, "sm_clock_mhz": None, "mem_clock_mhz": None}
        if self.handle is not None:
            n = self.nvml
            dec = lambda x: x.decode() if isinstance(x, bytes) else x  # noqa: E731
            try:
                info["name"] = dec(n.nvmlDeviceGetName(self.handle))
                info["uuid"] = dec(n.nvmlDeviceGetUUID(self.handle))
                info["driver"] = dec(n.nvmlSystemGetDriverVersion())
                info["power_limit_w"] = n.nvmlDeviceGetEnforcedPowerLimit(self.handle) / 1000.0
                info["sm_clock_mhz"] = n.nvmlDeviceGetMaxClockInfo(self.handle, n.NVML_CLOCK_SM)
                info["mem_clock_mhz"] = n.nvmlDeviceGetMaxClockInfo(self.handle, n.NVML_CLOCK_MEM)
            except Exception:
                pass
        return info


THROTTLE_BENIGN = {"gpu_idle", "applications_clocks_setting", "display_clock_setting"}


def stat(xs):
    v = sorted(xs)
    n = len(v)
    med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / n)
    return {"median": med, "min": v[0], "max": v[-1], "cv": sd / abs(mean) if mean else 0.0, "n": n}


def measure(clock, call, sets, meter, idle_w, a, rng):
    """The protocol; `call(i)` enqueues one call on input set i."""
    warm = []
    for i in range(max(1, a.warmup)):
        mark = clock.start()
        call(i % sets)
        warm.append(clock.seconds_since(mark))
        if sum(warm) >= 3.0:
            break
    t_est = sorted(warm)[len(warm) // 2]
    calls = max(1, math.ceil(a.min_seconds / t_est)) if t_est > 0 else 1
    start = meter.state()
    reps, nxt, retries = [], len(warm) % sets, 0
    while len(reps) < a.reps:
        time.sleep(rng.uniform(*a.gap))
        clock.sync()
        energy_mark = meter.begin()
        mark = clock.start()
        for _ in range(calls):
            call(nxt)
            nxt = (nxt + 1) % sets
        dev_s = clock.seconds_since(mark)
        clock.sync()
        joules, wall, method = meter.end(energy_mark)
        if dev_s < a.min_seconds and retries < 4:
            calls = max(calls + 1, math.ceil(calls * a.min_seconds / max(dev_s, 1e-9) * 1.05))
            retries += 1
            continue
        retries = 0
        reps.append((calls, dev_s, joules, wall, method))
    end = meter.state()
    thr = any(r not in THROTTLE_BENIGN for st in (start, end) for r in st["throttle_reasons"])
    metered = all(r[2] is not None for r in reps)
    return {
        "seconds": stat([r[1] / r[0] for r in reps]),
        "joules": stat([r[2] / r[0] for r in reps]) if metered else None,
        "joules_above_idle": stat([(r[2] - idle_w * r[3]) / r[0] for r in reps])
        if metered and idle_w is not None else None,
        "watts": stat([r[2] / r[3] for r in reps])["median"] if metered else None,
        "energy_method": reps[0][4] if len({r[4] for r in reps}) == 1 else "sampled_power",
        "throttled": thr,
        "calls": sum(r[0] for r in reps),
        "detail": {"idle_watts": idle_w, "buffer_sets": sets, "warmup_seconds_per_call": t_est,
                   "rep_seconds": [r[1] / r[0] for r in reps],
                   "rep_joules": [r[2] / r[0] for r in reps] if metered else [],
                   "rep_calls": [r[0] for r in reps], "start": start, "end": end},
    }


# ---------------------------------------------------------------- implementations

SDPA_BACKENDS = {"sdpa_flash": "FLASH_ATTENTION", "sdpa_efficient": "EFFICIENT_ATTENTION",
                 "sdpa_cudnn": "CUDNN_ATTENTION", "sdpa_math": "MATH"}


def allow_recompiles(torch):
    """torch.compile recompiles flex_attention for every shape and mask, and after
    `recompile_limit` (8) recompilations of one function it silently falls back to the eager,
    score-materializing implementation: a sweep of 11 context sizes would then time that. Raise the
    limits, and make hitting one an error (a failed point) rather than a silent fallback."""
    cfg = torch._dynamo.config
    for name, value in (("recompile_limit", 4096), ("cache_size_limit", 4096),
                        ("accumulated_recompile_limit", 1 << 16), ("accumulated_cache_size_limit", 1 << 16),
                        ("fail_on_recompile_limit_hit", True), ("fail_on_cache_limit_hit", True)):
        if hasattr(cfg, name):
            setattr(cfg, name, value)


def make_inputs(torch, dev, dtype, b, sq, sk, h, hk, d):
    """q, k, v in attnjoule's [batch, seq, heads, dim] memory layout, viewed as torch's [b, h, s, d]."""
    mk = lambda s_, hh: torch.empty(b, s_, hh, d, device=dev, dtype=dtype).uniform_(-1, 1).transpose(1, 2)  # noqa
    return mk(sq, h), mk(sk, hk), mk(sk, hk)


def make_call(torch, impl, mask, sets_qkv, sq, sk, h, hk):
    """A callable(i) running one attention call on input set i (returning its output), or raises
    if the implementation refuses the shape or mask."""
    F = torch.nn.functional
    gqa = h != hk
    dev = sets_qkv[0][0].device
    if impl in SDPA_BACKENDS:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backend = getattr(SDPBackend, SDPA_BACKENDS[impl])
        if mask["kind"] not in ("none", "causal"):
            raise NotImplementedError(f"{impl} has no {mask['kind']} mask (use flex)")
        kw = {}
        if mask["kind"] == "causal":
            if sq == sk:
                kw["is_causal"] = True
            elif sq > 1:  # bottom-right causal for decode steps of several tokens
                from torch.nn.attention.bias import causal_lower_right
                kw["attn_mask"] = causal_lower_right(sq, sk)
        if gqa:
            kw["enable_gqa"] = True

        def call(i):
            q, k, v = sets_qkv[i]
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, **kw)
        call(0)  # raises here when the backend refuses the shape
        return call
    if impl == "flex":
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        if dev.type == "cuda":
            # Eager create_block_mask materializes the whole seq_q x seq_k mask (1 TB at 1M tokens);
            # compiled, it is fused into a block reduction.
            create_block_mask = torch.compile(create_block_mask)
        off = sk - sq
        if mask["kind"] == "none":
            block_mask = None
        elif mask["kind"] == "causal":
            block_mask = create_block_mask(lambda b, hh, qi, ki: qi + off >= ki, None, None, sq, sk, device=dev)
        elif mask["kind"] == "window":
            w = mask["keys"]
            block_mask = create_block_mask(lambda b, hh, qi, ki: (qi + off >= ki) & (qi + off - ki < w),
                                           None, None, sq, sk, device=dev)
        else:
            bsz, local, glob = longformer_params(mask)
            doff = max(sk - sq, 0) // bsz  # block row r's diagonal is column r + doff

            def longformer(b, hh, qi, ki):
                r, c = qi // bsz, ki // bsz
                return (r + doff < glob) | (c < glob) | ((r + doff - c).abs() <= local)
            block_mask = create_block_mask(longformer, None, None, sq, sk, device=dev, BLOCK_SIZE=bsz)
        # Compiled on a GPU (FlexAttention's fused kernel, what users run); eager on --cpu.
        fa = torch.compile(flex_attention, dynamic=False) if dev.type == "cuda" else flex_attention
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")

        def call(i):
            q, k, v = sets_qkv[i]
            return fa(q, k, v, block_mask=block_mask, enable_gqa=gqa)
        call(0)
        return call
    raise ValueError(f"unknown implementation {impl}")


# ---------------------------------------------------------------- --check

CHECK_SHAPES = [  # (seq_q, seq_k): prefill, blocks cut short, decode steps of 1, 4, 16 tokens
    (256, 256), (300, 300), (1, 1000), (4, 1000), (16, 333)]
CHECK_MASKS = ["none", "causal", "window:1", "window:100", "longformer:128:1:1", "longformer:64:0:2"]


def attnjoule_rows(binary, ms, sq, sk):
    """Visible key runs per query row, as attnjoule defines the mask."""
    try:
        out = subprocess.run([binary, "mask", "--mask", ms, "--seq", str(sq), "--seq-k", str(sk), "--json", "--rows"],
                             check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit(f"--check needs the attnjoule binary at {binary!r} (cargo build --release, or --attnjoule PATH)")
    except subprocess.CalledProcessError as e:
        sys.exit(f"attnjoule mask failed: {e.stderr.strip()}")
    return json.loads(out)["rows"]


def reference(torch, q, k, v, rows):
    """float64 masked attention; rows[i] = visible [lo, hi) key runs of query i (none visible: 0)."""
    q, k, v = (x.to(torch.float64).cpu() for x in (q, k, v))
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    vis = torch.zeros(q.shape[2], k.shape[2], dtype=torch.bool)
    for i, runs in enumerate(rows):
        for lo, hi in runs:
            vis[i, lo:hi] = True
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~vis, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return p @ v


def check(torch, a, dev):
    """Each implementation, called as the measurement calls it, against the float64 reference."""
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    limit = 1e-2 if dtype == torch.bfloat16 else 1e-5
    b, h, hk, d = 2, 4, 2, 64
    # On a GPU every shape and mask compiles FlexAttention anew (seconds each): fewer shapes there.
    shapes = CHECK_SHAPES if dev.type == "cpu" else [(300, 300), (4, 1000), (16, 333)]
    bad, ran, worst = 0, 0, {}
    for impl in a.impls.split(","):
        for ms in CHECK_MASKS:
            mask = parse_mask(ms)
            if impl in SDPA_BACKENDS and mask["kind"] not in ("none", "causal"):
                continue  # not offered (make_call refuses it): those points are recorded failed
            for sq, sk in shapes:
                rows = attnjoule_rows(a.attnjoule, ms, sq, sk)
                q, k, v = make_inputs(torch, dev, dtype, b, sq, sk, h, hk, d)
                try:
                    out = make_call(torch, impl, mask, [(q, k, v)], sq, sk, h, hk)(0)
                except Exception as e:  # a refusal is not a mismatch: that point is recorded failed
                    print(f"{impl:15} {ms:20} q={sq:<4} k={sk:<5} unsupported: {str(e).splitlines()[0][:90]}")
                    continue
                ref = reference(torch, q, k, v, rows)
                got = out.to(torch.float64).cpu()
                err = ((got - ref).norm() / ref.norm()).item()
                ran += 1
                worst[impl] = max(worst.get(impl, 0.0), err)
                ok = err <= limit
                bad += not ok
                print(f"{impl:15} {ms:20} q={sq:<4} k={sk:<5} rel L2 {err:.2e} {'ok' if ok else 'MISMATCH'}")
    summary = ", ".join(f"{i} worst {e:.2e}" for i, e in worst.items())
    print(f"check on {dev} ({dtype}), limit {limit:g}: {ran} cases ran, {bad} mismatches; {summary}")
    return bad == 0 and ran > 0


# ---------------------------------------------------------------- the sweep

def l2_bytes(torch, cuda):
    """The device's L2 size, as attnjoule's sweep reads it from the driver."""
    if cuda:
        return getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", L2_BYTES)
    return L2_BYTES


def free_bytes(torch, cuda):
    if cuda:
        return torch.cuda.mem_get_info()[0]
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def main():
    a = parse_args()
    import torch
    cuda = not a.cpu
    if cuda and not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to PyTorch; --cpu runs the same script on the CPU (dry run, no energy)")
    if cuda:
        torch.cuda.set_device(a.device)
    dev = torch.device("cuda", a.device) if cuda else torch.device("cpu")
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2 ** 63)
    print(f"seed {seed}", file=sys.stderr)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    allow_recompiles(torch)
    if a.check:
        sys.exit(0 if check(torch, a, dev) else 1)
    clock, meter = Clock(torch, cuda), Meter(torch, a.device, cuda)
    gpu = meter.gpu_info()
    idle_w = None
    if cuda:
        clock.sync()
        m = meter.begin()
        time.sleep(max(0.5, a.idle_seconds))
        j, wall, _ = meter.end(m)
        idle_w = j / wall
        print(f"{gpu['name']}: idle {idle_w:.1f} W", file=sys.stderr)

    ctxs = [int(x) for x in a.ctx.split(",") if x] or [c for c in (2 ** i for i in range(31))
                                                       if a.ctx_min <= c <= a.ctx_max]
    points = []
    b, h, hk, d = a.batch, a.heads, a.kv_heads, a.head_dim
    impl_name = f"torch-{torch.__version__}"
    for phase in a.phases.split(","):
        for impl in a.impls.split(","):
            for ms in a.mask.split(","):
                mask = parse_mask(ms)
                for ctx in ctxs:
                    for sq in ([ctx] if phase == "prefill" else [int(t) for t in a.decode_tokens.split(",")]):
                        sk = ctx
                        flops, min_bytes = work(mask, b, sq, sk, h, hk, d)
                        pt = {"variant": impl, "implementation": impl_name, "phase": phase, "mask": mask["recipe"],
                              "shape": {"batch": b, "seq_q": sq, "seq_k": sk, "heads": h, "kv_heads": hk,
                                        "head_dim": d},
                              "status": "ok", "flops": flops, "min_bytes": min_bytes, "energy_method": "none",
                              "throttled": False, "ncu": {}, "note": None}
                        set_bytes = 2 * (2 * b * sq * h * d + 2 * b * sk * hk * d)
                        free = free_bytes(torch, cuda)
                        if set_bytes * 1.5 > free * 0.95:
                            pt.update(status="infeasible", need_gib=set_bytes * 1.5 / GIB, have_gib=free / GIB)
                            points.append(pt)
                            print(f"{impl} {phase} ctx={ctx} q={sq}: infeasible", file=sys.stderr)
                            continue
                        nsets = max(1, min(1024, max(2, -(-2 * l2_bytes(torch, cuda) // set_bytes) + 1),
                                           int(free * 0.5 // set_bytes)))
                        sets, call = [], None
                        try:
                            for _ in range(nsets):
                                sets.append(make_inputs(torch, dev, torch.bfloat16, b, sq, sk, h, hk, d))
                            call = make_call(torch, impl, mask, sets, sq, sk, h, hk)
                            if cuda:
                                torch.cuda.nvtx.range_push(f"peer.{impl}.{phase}.ctx{ctx}.q{sq}")
                            try:
                                r = measure(clock, call, nsets, meter, idle_w, a, rng)
                            finally:
                                if cuda:
                                    torch.cuda.nvtx.range_pop()
                            pt.update(r)
                            msg = f"{r['seconds']['median'] * 1e3:.4f} ms/call"
                            if r["joules"] is not None:
                                msg += f", {r['joules']['median']:.4f} J/call"
                            msg += f", {flops / r['seconds']['median'] / 1e12:.3f} TFLOP/s"
                        except Exception as e:  # unsupported or failed: recorded, the sweep goes on
                            pt.update(status="failed", error=f"{type(e).__name__}: {e}".splitlines()[0])
                            msg = "FAILED " + pt["error"]
                        del sets, call
                        if cuda:
                            torch.cuda.empty_cache()
                        points.append(pt)
                        print(f"{impl} {phase} {mask['recipe']} ctx={ctx} q={sq}: {msg}", file=sys.stderr)
                        # rewritten after each point (a crash keeps what ran), whole: temp + rename
                        write_atomic(a.out, profile(gpu, idle_w, points, impl_name, a, cuda))
    print(f"wrote {a.out} ({len(points)} points)")


def write_atomic(path, obj):
    """Writes obj as JSON to path so that a crash or a full disk leaves the old file or the new one."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def profile(gpu, idle_w, points, impl_name, a, cuda=True):
    notes = [f"peer baseline; protocol: {a.reps} reps of >= {a.min_seconds} s windows after {a.gap[0]}-{a.gap[1]} s idle gaps, medians"]
    if not cuda:
        notes.append("--cpu dry run: host-clock seconds on the CPU, no energy; not a GPU measurement")
    # The kind says what produced the numbers: a CPU dry run is never "measured".
    return {"schema_version": 2, "kind": "measured" if cuda else "cpu_dry_run", "gpu": gpu,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "tool": f"benches/peers/torch_attention.py ({impl_name})", "peaks": None, "idle_watts": idle_w,
            "points": points, "gemm": [], "notes": notes}


if __name__ == "__main__":
    main()

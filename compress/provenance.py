"""Where a number came from: the code (git commit, clean or not), the machine (CPU model and the features
that decide its speed), the library versions, and the precision a run trained in."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from .files import REPO_ROOT


def git_commit(repo: Path = REPO_ROOT) -> str:
    """HEAD's hash, with `+dirty` when the tree has uncommitted changes; `unknown` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=None)
def cpu_info() -> dict[str, str]:
    """The first CPU's fields in Linux /proc/cpuinfo (`model name`, `vendor_id`, `flags`, ...); {} elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            first_cpu = f.read().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first_cpu.splitlines())}


def cpu_model() -> str:
    """The CPU's model name, family/model numbers and bf16 hardware: the same name covers machines that
    train 3x apart (`Intel(R) Xeon(R) Processor` with and without AMX), so the features are part of it."""
    info = cpu_info()
    if not info:
        return platform.processor() or platform.machine()  # "x86_64" on Linux, hence /proc/cpuinfo
    flags = set(info.get("flags", "").split())
    isa = [name for flag, name in (("avx512f", "AVX512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX"))
           if flag in flags] or ["no AVX512"]
    if "avx512_bf16" in flags and "amx_bf16" not in flags:
        isa.append("no AMX")
    return (f"{info.get('model name', '?')} [family {info.get('cpu family', '?')} model {info.get('model', '?')}; "
            f"{', '.join(isa)}]")


def device_name(device: str | None = None) -> str:
    dev = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if dev.startswith("cuda") and torch.cuda.is_available():
        return f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "torchvision", "torch_pruning", "torchao", "numpy", "pandas", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # a missing optional package is recorded, not fatal
            out[mod] = "absent"
    return out


def provenance(config: dict | None = None, *, seed: int | None = None, data_source: str | None = None,
               device: str | None = None) -> dict:
    """Everything needed to trace a number: what was asked, on what data, with which code, where."""
    return {
        "config": config or {},
        "seed": seed,
        "data_source": data_source,
        "device": device_name(device),
        "versions": versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

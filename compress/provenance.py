"""Where a number came from: the code (git commit, clean or not), the machine (CPU model and the features
that decide its speed), the library versions, and the precision a run trained in."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
from importlib import metadata
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


# the instruction sets that decide how fast this project's kernels run: bf16 training (AVX512-BF16, AMX) and
# INT8 inference (VNNI, AMX); the same model name covers machines that train 3x apart
CPU_FEATURES = (("avx2", "AVX2"), ("avx512f", "AVX512"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
                ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX"))


def cpu_features() -> list[str]:
    """The CPU_FEATURES this CPU has, then what it lacks that a reader would otherwise assume: `no VNNI`
    (INT8 kernels run without dot-product instructions), `no native bf16`, `no AMX`."""
    flags = set(cpu_info().get("flags", "").split())
    have = [name for flag, name in CPU_FEATURES if flag in flags]
    if not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        have.append("no VNNI")
    if not flags & {"avx512_bf16", "amx_bf16"}:
        have.append("no native bf16")
    elif "amx_bf16" not in flags:
        have.append("no AMX")
    return have


def cpu_model() -> str:
    """The CPU's model name, family/model numbers and the features that decide its speed (`cpu_features`)."""
    info = cpu_info()
    if not info:
        return platform.processor() or platform.machine()  # "x86_64" on Linux, hence /proc/cpuinfo
    return (f"{info.get('model name', '?')} [family {info.get('cpu family', '?')} model {info.get('model', '?')}; "
            f"{', '.join(cpu_features())}]")


def device_name(device: str | None = None) -> str:
    dev = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if dev.startswith("cuda") and torch.cuda.is_available():
        return f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


# read from the installed package's metadata, not imported: torchao sets its __version__ from the very same
# metadata, and importing it just to read it logs torch's "KernelPreference is an Enum subclass" deprecation
# line in every command (the PT2E code imports it where it is used, quant/pt2e.py)
NOT_IMPORTED = {"torchao": "torchao"}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "torchvision", "torch_pruning", "torchao", "numpy", "pandas", "onnxruntime"):
        try:
            out[mod] = metadata.version(NOT_IMPORTED[mod]) if mod in NOT_IMPORTED else __import__(mod).__version__
        except Exception:  # a missing optional package is recorded, not fatal
            out[mod] = "absent"
    return out


def provenance(config: dict | None = None, *, seed: int | None = None, data_source: str | None = None,
               data_digest: str | None = None, device: str | None = None, precision: str | None = None) -> dict:
    """Everything needed to trace a number: what was asked, on what data, with which code (and whether the
    tree was clean), where (the machine and its CPU features), in which training precision."""
    commit = git_commit()
    return {
        "config": config or {},
        "seed": seed,
        "data_source": data_source,
        "data_digest": data_digest,  # data.content_digest: the set's identity, whatever form it was read from
        "device": device_name(device),
        "cpu_features": cpu_features(),
        "precision": precision,
        "versions": versions(),
        "git_commit": commit,
        "clean": commit != "unknown" and not commit.endswith("+dirty"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

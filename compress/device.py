"""Which arithmetic and memory layout a device trains in: the precision policy (bf16 where it is native and
faster, fp32 elsewhere, `$COMPRESS_PRECISION` to pin it) and the device default. Kept out of the trainer so
the trainer never reads the machine or the environment itself, and every caller (the trainer, the step
keys, the speed probe, the benchmarks) resolves `auto` by the same rule.
"""
from __future__ import annotations

import os

import torch

from .provenance import cpu_info

PRECISIONS = ("auto", "bf16", "fp32")
PRECISION_ENV = "COMPRESS_PRECISION"  # what `auto` resolves to on this machine, when set


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_pays(flags: set[str], vendor: str) -> bool:
    """Whether bf16 autocast trains faster than fp32 on a CPU with these /proc/cpuinfo `flags` and `vendor_id`.

    Measured, ResNet18 at full width, batch 128, 2 threads: Intel with AMX 169 img/s in bf16; AMD EPYC with
    AVX512-BF16 111 img/s bf16 against 45 fp32; an Intel Xeon (Emerald Rapids) VM that exposes AVX512-BF16
    but not AMX 49 img/s bf16 against 57 fp32 (61 -> 67 with channels_last). Intel's AVX512-BF16 alone is
    no faster than its fp32 FMAs, so bf16 pays with AMX, or with AVX512-BF16 on AMD; fp32 elsewhere."""
    return "amx_bf16" in flags or ("avx512_bf16" in flags and vendor == "AuthenticAMD")


def cpu_has_fast_bf16() -> bool:
    """`bf16_pays` for this machine's CPU (Linux /proc/cpuinfo; elsewhere AMX as torch detects it)."""
    info = cpu_info()
    if not info:
        return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return bf16_pays(set(info.get("flags", "").split()), info.get("vendor_id", ""))


def channels_last_pays(precision: str, device) -> bool:
    """channels_last for training: with bf16 everywhere, and with fp32 on CPUs (oneDNN's convolutions are
    native NHWC: ResNet18 61 -> 67 img/s on the Intel VM above, 45 -> 56 on the AMD EPYC; VGG16_BN even)."""
    return precision == "bf16" or torch.device(device).type == "cpu"


def resolve_precision(precision: str, device) -> str:
    """`bf16` or `fp32` for `device`: `auto` takes bf16 where it is native and faster (CUDA with bf16, a CPU
    where `bf16_pays`), unless $COMPRESS_PRECISION names one. The resolved precision is part of every
    training step's cache key, so a long run that moves to another kind of machine sets it to keep its keys."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    forced = os.environ.get(PRECISION_ENV)
    if forced:
        if forced not in ("bf16", "fp32"):
            raise ValueError(f"${PRECISION_ENV}={forced!r}: choose bf16 or fp32 (or unset it for auto)")
        return forced
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    """bf16 autocast on the device's own backend (CUDA or CPU), or a no-op for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

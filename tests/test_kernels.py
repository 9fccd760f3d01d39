"""The oneDNN guard (compress/kernels.py): gradients of the convolutions oneDNN#6035 gets wrong are right
through the trainer's path on this CPU and on its AVX2 path, and the guard touches nothing else.

Each check runs in a fresh process (tests/kernel_check.py) with a time limit: the unguarded kernel hangs or
corrupts the heap, and that must fail one test, not the suite."""
from __future__ import annotations

import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from compress.kernels import GUARD_ENV, affected_convs, channels_last_training, guard_active, in_affected_family

CHECK = Path(__file__).with_name("kernel_check.py")
X86 = platform.machine().lower() in ("x86_64", "amd64")
ISAS = ["native", pytest.param("AVX2", marks=pytest.mark.skipif(not X86, reason="ONEDNN_MAX_CPU_ISA is x86-only"))]


def run_check(*args: str, isa: str = "native", guard: bool = True, timeout: float = 180) -> list[dict] | None:
    """The check's JSON rows; a hang fails the test, unless `guard` is off (then None: the kernel hung)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    if not guard:
        env[GUARD_ENV] = "0"
    try:
        out = subprocess.run([sys.executable, str(CHECK), *args], env=env, capture_output=True, text=True,
                             timeout=timeout, cwd=CHECK.parent.parent)
    except subprocess.TimeoutExpired:
        if not guard:
            return None
        pytest.fail(f"kernel_check {' '.join(args)} ({isa}, guard {guard}) hung for {timeout:.0f} s")
    if not guard and out.returncode != 0:
        return None  # heap corruption: broken too
    assert out.returncode == 0, f"kernel_check crashed (rc {out.returncode}): {out.stderr[-2000:]}"
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("isa", ISAS)
def test_1x1_conv_gradients_match_nchw(isa):
    """Input channels 1-17, strides 1 and 2: the cases that hang (1), go wrong (2-7 on AVX2) and the block edges."""
    rows = run_check("convs", ",".join(str(c) for c in range(1, 18)), "1,2", isa=isa)
    assert len(rows) == 17 * 2
    bad = [r for r in rows if not (r["dw"] < 1e-4 and r["dx"] < 1e-4)]
    assert not bad, f"gradients differ from the NCHW reference: {bad}"


@pytest.mark.parametrize("isa", ISAS)
def test_pruned_resnet_gradients_match_nchw(isa):
    """Every parameter's gradient of a pruned ResNet18 whose downsample convs read 4, 8 and 16 channels."""
    (row,) = run_check("resnet", isa=isa)
    assert row["downsample_inputs"] == [4, 8, 16]
    assert row["dw"] < 1e-3 and row["dx"] < 1e-3, row


def unguarded_avx2(*args: str, case_timeout: float = 6, start_timeout: float = 180) -> tuple[str, list[dict]]:
    """kernel_check's rows on the AVX2 path with the guard off, streamed: 'wrong' at the first row whose weight
    gradient is off (the process is stopped there), 'hung' when a case gives no row within `case_timeout` (a case
    takes well under a second: the clock starts at its `case` line, after the imports), 'crashed' on a non-zero
    exit (the heap corruption), else 'right'."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "ONEDNN_MAX_CPU_ISA": "AVX2", GUARD_ENV: "0"}
    proc = subprocess.Popen([sys.executable, str(CHECK), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=CHECK.parent.parent)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True).start()
    rows, started, deadline = [], False, time.monotonic() + start_timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if not started:
                    pytest.fail(f"kernel_check {' '.join(args)} did not start a case in {start_timeout:.0f} s")
                return "hung", rows
            if line is None:
                break
            if line.startswith("case "):
                started, deadline = True, time.monotonic() + case_timeout
            elif line.startswith("{"):
                rows.append(json.loads(line))
                if rows[-1]["dw"] > 1e-2:
                    return "wrong", rows
    finally:
        proc.kill()
        proc.wait()
    return ("crashed" if proc.returncode != 0 else "right"), rows


@pytest.mark.skipif(not X86, reason="the broken kernel is oneDNN's x86 AVX2 1x1 backward")
def test_unguarded_avx2_kernel_is_still_wrong():
    """The reason the guard exists. If this fails, the pinned torch's oneDNN computes these gradients right:
    set `kernels.FIXED_IN_TORCH` to that release and the guard lifts itself. Input channels 3 and 5 go
    silently wrong; a hang or a crash (the heap corruption) counts as broken too. The first broken case ends
    the check, and a hang is a case silent for 6 s (a case takes milliseconds), not the whole run's limit."""
    outcome, rows = unguarded_avx2("convs", "3,5", "2")
    assert outcome != "right", f"unguarded AVX2 gradients are right now: {rows}"


def test_affected_family_is_1x1_strided_narrow():
    assert in_affected_family(4, 1, (1, 1), (2, 2))
    assert in_affected_family(15, 1, (1, 1), (2, 1))
    assert not in_affected_family(16, 1, (1, 1), (2, 2))  # the AVX-512 block is the bound
    assert not in_affected_family(4, 1, (1, 1), (1, 1))  # stride 1 takes another path
    assert not in_affected_family(4, 1, (3, 3), (2, 2))  # so does a 3x3 kernel
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.Conv2d(8, 8, 1, 2), nn.Conv2d(8, 32, 1, 1), nn.Conv2d(32, 8, 1, 2))
    assert list(affected_convs(model)) == ["1"]


def test_guard_keeps_only_affected_convs_nchw_and_undoes_itself():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.Conv2d(4, 8, 1, 2), nn.Conv2d(8, 8, 3, 1, 1))
    with channels_last_training(model, "cpu") as channels_last:
        assert channels_last
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert model[1].weight.stride() == (4, 1, 1, 1)  # NCHW strides, not merely "contiguous"
        assert len(model[1]._forward_pre_hooks) == 1
        out = model(torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last))
        assert out.shape == (2, 8, 4, 4)
    assert all(not m._forward_pre_hooks for m in model)
    assert all(p.is_contiguous() for p in model.parameters())


def test_guard_can_be_lifted(monkeypatch):
    monkeypatch.setenv(GUARD_ENV, "0")
    assert not guard_active()
    model = nn.Sequential(nn.Conv2d(4, 8, 1, 2))
    with channels_last_training(model, "cpu"):
        assert not model[0]._forward_pre_hooks
    monkeypatch.delenv(GUARD_ENV)
    assert guard_active()

"""What a compressed model costs: parameters, MACs, file size (raw and gzip), latency.

MACs are the multiply-accumulates of the conv and linear layers for one 32x32 image, counted by thop: the one
counter every table uses (BN, ReLU, pooling and residual adds are not MACs; `count_macs`). Latency is the median (and p90) of many timed runs after a warm-up, with the
batch size, device and thread count recorded next to it, because a latency without those is not a number.
"""
from __future__ import annotations

import copy
import gzip
import io
import statistics
import time
from contextlib import contextmanager

import torch
from torch import nn

from .models import conv_layers


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


MAC_CONVENTIONS = ("conv+linear", "thop")


def count_macs(model: nn.Module, input_size=(1, 3, 32, 32), convention: str = "conv+linear") -> int:
    """Multiply-accumulates (MACs, not FLOPs: one MAC is a multiply and an add) in one forward pass of an
    `input_size` batch, counted by thop (pinned in requirements.txt).

    `conv+linear` (every table here): conv and linear layers only; BN folds into the conv before it at inference,
    and ReLU, pooling and residual adds are not MACs. `thop`: thop's own default, which also counts 2 per
    BN element and the average pools, as papers quoting thop do (HRankPlus' VGG16-BN: 313.2M conv + linear,
    314.3M by thop). A test cross-checks `conv+linear` against `torch.utils.flop_counter` (FLOPs / 2).
    """
    import warnings

    with warnings.catch_warnings():  # thop 0.1.1 compares versions with distutils' deprecated LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        import thop
        from thop.vision.basic_hooks import zero_ops

    if convention not in MAC_CONVENTIONS:
        raise ValueError(f"unknown MAC convention {convention!r}; choose one of {list(MAC_CONVENTIONS)}")
    custom = {}
    if convention == "conv+linear":
        macs = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
        # leaves only: thop does not look inside a module it has a hook for
        custom = {type(m): zero_ops for m in model.modules() if not any(m.children()) and not isinstance(m, macs)}
    param = next(model.parameters())
    was_training = model.training
    try:
        with torch.no_grad():
            total, _ = thop.profile(model, inputs=(torch.zeros(*input_size, device=param.device, dtype=param.dtype),),
                                    custom_ops=custom, verbose=False)
    finally:
        model.train(was_training)
        for m in model.modules():  # thop leaves its counters on the modules it had no rule for: off the state dict
            for name in ("total_ops", "total_params"):
                m._buffers.pop(name, None)
    return int(round(float(total)))


def serialized_bytes(model: nn.Module) -> bytes:
    """The model's state dict as torch.save writes it: what a user ships."""
    buf = io.BytesIO()
    torch.save({k: _canonical(v) for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def _canonical(value):
    """A fresh contiguous copy of a float tensor, so the same weights give the same bytes whatever their memory
    format; quantized tensors and packed-parameter entries are saved as they are."""
    if isinstance(value, torch.Tensor) and not value.is_quantized:
        return value.detach().clone(memory_format=torch.contiguous_format)
    return value


def size_mb(model: nn.Module) -> float:
    return len(serialized_bytes(model)) / 1e6


def gzip_size_mb(model: nn.Module) -> float:
    """Compressed size: the only place unstructured sparsity shows up."""
    return len(gzip.compress(serialized_bytes(model), compresslevel=9)) / 1e6


def conv_channels(model: nn.Module) -> dict[str, int]:
    """Output channels of every conv layer, by name: how a pruned architecture looks."""
    return {name: m.out_channels for name, m in conv_layers(model).items()}


@contextmanager
def num_threads(n: int | None):
    """Temporarily run torch's CPU ops on `n` threads (None: leave as is)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def time_callable(fn, *, warmup: int = 20, runs: int = 200, cuda: bool = False) -> list[float]:
    """Wall-clock milliseconds of `runs` calls of `fn()` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_interleaved(fns: dict, *, warmup: int = 20, runs: int = 200, blocks: int = 10) -> dict[str, list[float]]:
    """Wall-clock milliseconds of `runs` calls of each `fns[name]()`, timed in `blocks` alternating blocks.

    Timing one model after another turns any drift in the machine's speed (another process, a noisy
    neighbour on the host, frequency) into a false speedup; alternating blocks spread it over every model
    alike, so their ratios stay honest. Each block starts with two untimed calls (the switch from one
    model's kernels and thread pool to the next), after `warmup` untimed calls of each at the start; the
    order rotates from block to block.
    """
    names = list(fns)
    for name in names:
        time_callable(fns[name], warmup=warmup, runs=0)
    times = {name: [] for name in names}
    blocks = max(1, min(blocks, runs))
    for b in range(blocks):
        n = runs // blocks + (b < runs % blocks)
        for name in names[b % len(names):] + names[:b % len(names)]:
            times[name] += time_callable(fns[name], warmup=2, runs=n)
    return times


class OthersCpu:
    """Share of the machine's CPU time (0-1) that anything but this process took during a `with` block: a
    latency timed while other work ran (or the host stole cycles) shows up as such, instead of as a slow
    model. Linux only (/proc); `share` is None elsewhere."""

    def __enter__(self):
        self.share, self._start = None, self._read()
        return self

    def __exit__(self, *exc):
        end = self._read()
        if self._start and end:
            total = end[0] - self._start[0]
            others = (end[1] - self._start[1]) - (end[2] - self._start[2])
            self.share = max(0.0, others / total) if total > 0 else None
        return False

    @staticmethod
    def _read():
        """(all CPU ticks, busy ticks, this process's ticks), or None without /proc."""
        try:
            with open("/proc/stat") as f:
                cpu = [int(v) for v in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total = sum(cpu[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
        return total, total - cpu[3] - cpu[4], int(own[11]) + int(own[12])  # utime + stime of every thread


def latency_stats(times_ms: list[float]) -> dict:
    ordered = sorted(times_ms)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "runs": len(ordered)}


def measure_latency(model: nn.Module, *, batch_size: int = 1, device="cpu", threads: int | None = None,
                    warmup: int = 20, runs: int = 200) -> dict:
    """Median and p90 inference latency in ms, with the batch size, device and thread count used."""
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, 32, 32, device=device)
    with num_threads(threads) as n, torch.inference_mode():
        times = time_callable(lambda: model(x), warmup=warmup, runs=runs, cuda=device.type == "cuda")
    return {**latency_stats(times), "batch_size": batch_size, "device": str(device),
            "threads": n if device.type == "cpu" else None}


def interleaved_latency(fns: dict, *, threads: int | None = None, warmup: int = 20, runs: int = 200,
                        blocks: int = 10) -> dict[str, dict]:
    """`measure_latency` for several no-argument callables at once (models, onnxruntime sessions), timed in
    alternating blocks (`time_interleaved`) on `threads` torch threads: {name: median_ms, p90_ms, runs,
    threads, others_cpu}, `others_cpu` being the share of the CPU other processes took meanwhile."""
    with num_threads(threads) as n, torch.inference_mode(), OthersCpu() as others:
        times = time_interleaved(fns, warmup=warmup, runs=runs, blocks=blocks)
    return {name: {**latency_stats(t), "threads": n, "others_cpu": others.share} for name, t in times.items()}


def model_summary(model: nn.Module) -> dict:
    """The static costs in one dict: params, MACs, size and gzip size (MB)."""
    return {"params": count_params(model), "macs": count_macs(model), "size_mb": size_mb(model),
            "gzip_mb": gzip_size_mb(model)}


def model_costs(model: nn.Module, *, latency_runs: int | None = None, latency_warmup: int = 5) -> dict:
    """Static costs, plus batch-1 CPU latency (all threads) of a copy when `latency_runs` is given."""
    out = model_summary(model)
    if latency_runs:
        lat = measure_latency(copy.deepcopy(model).cpu(), runs=latency_runs, warmup=latency_warmup)
        out.update(latency_ms=lat["median_ms"], latency_p90_ms=lat["p90_ms"], latency_threads=lat["threads"])
    return out

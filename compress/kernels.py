"""Guards around CPU kernels known to compute wrong results, so training is correct on every CPU.

oneDNN, torch's CPU convolution library, gets the backward pass of a 1x1 convolution with stride > 1 wrong
on channels_last (NHWC) tensors when the convolution has fewer input channels than the kernel's channel
block (8 on AVX2, 16 on AVX-512): the weight gradient comes out silently wrong (input channels 2-7 on an
AVX2 path), the kernel spins forever (1 input channel) or it writes past its workspace and corrupts the heap.
Upstream: uxlfoundation/oneDNN#6035 ("1x1 convolution backward_weights writes past the rtus workspace
(nhwc, IC < ic_block)"); seen with torch 2.14.1 on an AMD EPYC (AVX2) and under `ONEDNN_MAX_CPU_ISA=AVX2`
on any x86 CPU. Stride 1, larger kernels and NCHW tensors take other code paths and are right.

Structured pruning makes exactly these shapes (ResNet downsample convs of a model pruned hard or at small
width), so the trainer's memory-format policy asks this module which convolutions to keep in NCHW while the
rest of the model trains in channels_last: `channels_last_training`. The cost is one layout conversion
around a conv that has few channels by definition (`benchmarks/kernel_guard.py` measures it).

To lift the guard once a torch whose oneDNN carries the fix is pinned, set `FIXED_IN_TORCH` to that release
(`tests/test_kernels.py` then checks the unguarded path too), or set $COMPRESS_ONEDNN_GUARD=0 for one run.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import nn

GUARD_ENV = "COMPRESS_ONEDNN_GUARD"  # "0" lifts the guard for a run (to check whether a torch is fixed)
ONEDNN_CHANNEL_BLOCK = 16  # the widest x86 block (AVX-512); AVX2's is 8: one bound safe for both
FIXED_IN_TORCH: str | None = None  # the first torch release whose oneDNN has the fix; None: every release


def _torch_release() -> tuple[int, ...]:
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


def guard_active() -> bool:
    """Whether the guard applies in this process: not lifted by $COMPRESS_ONEDNN_GUARD=0 or a fixed torch."""
    if os.environ.get(GUARD_ENV, "1") == "0":
        return False
    if FIXED_IN_TORCH is not None:
        fixed = tuple(int(p) for p in FIXED_IN_TORCH.split(".")[:2])
        return _torch_release() < fixed
    return True


def in_affected_family(in_channels: int, groups: int, kernel_size, stride) -> bool:
    """The shapes of oneDNN#6035: a 1x1 kernel, a stride above 1, fewer input channels per group than the block."""
    return (tuple(kernel_size) == (1, 1) and any(s > 1 for s in tuple(stride))
            and in_channels // groups < ONEDNN_CHANNEL_BLOCK)


def affected_convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The model's conv modules whose channels_last backward would go through the broken oneDNN path."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and in_affected_family(m.in_channels, m.groups, m.kernel_size, m.stride)}


def _graph_has_affected_conv(model: nn.Module) -> bool:
    """For an FX graph (e.g. a PT2E-prepared model, whose convs are graph ops, not modules): whether any conv
    op is in the affected family, or cannot be checked (then the answer is yes: correctness first)."""
    graph = getattr(model, "graph", None)
    if graph is None:
        return False
    convs = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in convs:
            continue
        weight = node.args[1].meta.get("val") if isinstance(node.args[1], torch.fx.Node) else None
        if weight is None or weight.dim() != 4:
            return True
        stride = node.args[3] if len(node.args) > 3 else (1, 1)
        groups = node.args[6] if node.target is torch.ops.aten.conv2d.default and len(node.args) > 6 else \
            (node.args[8] if len(node.args) > 8 else 1)
        stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
        if in_affected_family(weight.shape[1] * groups, groups, weight.shape[2:], stride):
            return True
    return False


def _nchw(t: torch.Tensor) -> torch.Tensor:
    """`t` with NCHW strides. Not `.contiguous()`: a tensor with size-1 dims (a 1x1 kernel, one channel) counts
    as contiguous in both layouts, and oneDNN would still take its channels_last strides for NHWC."""
    return t.clone(memory_format=torch.contiguous_format) if t.stride() != _nchw_strides(t.shape) else t


def _nchw_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _contiguous_input(_module, args):
    return tuple(_nchw(a) if isinstance(a, torch.Tensor) and a.dim() == 4 else a for a in args)


@contextlib.contextmanager
def channels_last_training(model: nn.Module, device, enabled: bool = True) -> Iterator[bool]:
    """Train `model` in channels_last (when `enabled`), keeping the convolutions of oneDNN#6035 in NCHW on a CPU.

    Converts the model in place; yields whether its inputs should be channels_last too (False when a graph
    model holds an affected conv op that cannot be guarded alone: then the whole model stays NCHW). On exit
    the hooks are removed and the model is contiguous again, as `fit` leaves it."""
    if not enabled:
        yield False
        return
    guard = torch.device(device).type == "cpu" and guard_active()
    if guard and _graph_has_affected_conv(model):
        yield False
        return
    model.to(memory_format=torch.channels_last)
    hooks = []
    if guard:
        for conv in affected_convs(model).values():
            conv.weight.data = _nchw(conv.weight.data)  # the same Parameter, so optimisers built later see it
            hooks.append(conv.register_forward_pre_hook(_contiguous_input))
    try:
        yield True
    finally:
        for h in hooks:
            h.remove()
        model.to(memory_format=torch.contiguous_format)

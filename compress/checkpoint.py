"""Save and load any model, pruned shapes included, through `torch.load(weights_only=True)`.

A checkpoint is a plain dict of tensors and primitives: the architecture name and width, the state
dict, and free-form metadata. Pruned models are rebuilt by creating the named architecture and then
resizing each conv / BN / linear layer to the stored tensor shapes before loading the weights, so no
pickled module (and no `weights_only=False`) is ever needed.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from .models import build_model
from .files import atomic_write_bytes

FORMAT = "compress-checkpoint-v1"


def save_checkpoint(model: nn.Module, path: str | Path, arch: str, width: float = 1.0, meta: dict | None = None,
                    *, fp16: bool = False) -> Path:
    """Write `model` atomically; `meta` may hold numbers, strings, lists and dicts of them. `fp16`: floating-point
    tensors stored in half precision (half the bytes; loading gives fp32 layers holding the rounded values)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": FORMAT,
        "arch": arch,
        "width": float(width),
        "dtype": "float16" if fp16 else "float32",
        "state_dict": state,
        "meta": meta or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, arch: str | None = None, map_location: str = "cpu", *,
                    width: float | None = None, stages: tuple[str, ...] | None = None) -> tuple[nn.Module, dict]:
    """The model (in its stored, possibly pruned, shapes) and the checkpoint's metadata.

    `arch` and `width`, if given, must match what is stored: loading a VGG16 file as a ResNet18, or a
    smoke-profile (width 0.125) model into a full-width run, is an error. So is a checkpoint whose recorded
    `stage` (baseline, pruned, sparse, scratch) is not among `stages`, when given: a pruned model passed where
    a baseline belongs would be tabled as the baseline. A checkpoint that records no stage is accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any unpickling failure: re-raised with the path and the likely cause
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot read checkpoint {path}: corrupt, truncated or not a compress checkpoint "
                         f"({first[:120]})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a compress checkpoint (expected format {FORMAT!r})")
    stored = payload["arch"]
    if arch is not None and arch != stored:
        raise ValueError(f"{path} holds a {stored!r} model, not {arch!r}")
    if width is not None and abs(float(payload["width"]) - width) > 1e-9:
        raise ValueError(f"{path} holds a width-{payload['width']:g} {stored} model, but this run uses width {width:g} "
                         f"(a checkpoint from another profile?)")
    stage = (payload.get("meta") or {}).get("stage")
    if stages is not None and stage is not None and stage not in stages:
        raise ValueError(f"{path} holds a {stage} model (its recorded stage), but this takes a "
                         f"{' or '.join(stages)} checkpoint")
    model = build_model(stored, width=payload["width"])
    state = payload["state_dict"]
    resize_to_state_dict(model, state)
    model.load_state_dict(state, strict=True)
    return model, payload["meta"]


def resize_to_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Replace each conv / BN / linear layer whose stored shape differs by one of the stored shape."""
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit this architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, module in list(model.named_modules()):
        w = state.get(f"{name}.weight")
        if w is None:
            continue
        if isinstance(module, nn.Conv2d) and w.shape != module.weight.shape:
            new = nn.Conv2d(w.shape[1] * module.groups, w.shape[0], module.kernel_size, module.stride, module.padding,
                            module.dilation, module.groups, bias=module.bias is not None)
        elif isinstance(module, nn.BatchNorm2d) and w.shape != module.weight.shape:
            new = nn.BatchNorm2d(w.shape[0], module.eps, module.momentum, module.affine, module.track_running_stats)
        elif isinstance(module, nn.Linear) and w.shape != module.weight.shape:
            new = nn.Linear(w.shape[1], w.shape[0], bias=module.bias is not None)
        else:
            continue
        _set_module(model, name, new)
    return model


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)

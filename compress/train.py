"""`fit` and `evaluate`: the one trainer behind the baseline, pruning fine-tunes, sparse schedules and QAT.

SGD with Nesterov momentum, a linear warm-up then linear decay to zero (per step), label smoothing, no
weight decay on BN parameters and biases, optional knowledge distillation from a teacher. On CUDA it
trains in bf16 autocast with channels_last tensors; on the CPU in fp32. The accuracy it reports is the
final epoch's on the test set, next to the validation curve; it never picks a best epoch on the test set.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import Batches, CifarData, Split


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 2.0
    eval_batch_size: int = 1024
    amp: bool = True  # bf16 autocast + channels_last, on CUDA only
    compile: bool = False
    distill_alpha: float = 0.9  # weight of the distillation term when a teacher is given
    distill_temperature: float = 4.0
    seed: int = 0
    progress: bool = True
    desc: str = "train"

    @classmethod
    def from_profile(cls, profile, arch: str, **overrides) -> "TrainConfig":
        """The baseline recipe of a profile for `arch`."""
        cfg = cls(epochs=profile.epochs, batch_size=profile.batch_size, lr=profile.lr_for(arch),
                  weight_decay=profile.weight_decay, label_smoothing=profile.label_smoothing,
                  warmup_epochs=profile.warmup_epochs, eval_batch_size=profile.eval_batch_size)
        return dataclasses.replace(cfg, **overrides)

    @classmethod
    def finetune_from_profile(cls, profile, epochs: int | None = None, lr: float | None = None, *,
                              arch: str | None = None, **overrides) -> "TrainConfig":
        """A short recovery run after pruning or for QAT: fewer epochs, lower peak (scaled for `arch`), brief warm-up."""
        if lr is None:
            lr = profile.finetune_lr_for(arch) if arch else profile.finetune_lr
        cfg = cls(epochs=profile.finetune_epochs if epochs is None else epochs, batch_size=profile.batch_size,
                  lr=lr, weight_decay=profile.weight_decay,
                  label_smoothing=profile.label_smoothing, warmup_epochs=min(1.0, profile.warmup_epochs),
                  eval_batch_size=profile.eval_batch_size, desc="fine-tune")
        return dataclasses.replace(cfg, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    history: pd.DataFrame  # one row per epoch: epoch, lr, train_loss, train_top1, val_top1, val_top5, val_loss, seconds
    test: dict  # final-epoch test metrics: top1, top5, loss
    train_seconds: float
    images_per_second: float

    @property
    def final_val_top1(self) -> float:
        return float(self.history["val_top1"].iloc[-1]) if len(self.history) else float("nan")

    @property
    def best_val_top1(self) -> float:
        return float(self.history["val_top1"].max()) if len(self.history) else float("nan")

    @property
    def mean_val_top1(self) -> float:
        return float(self.history["val_top1"].mean()) if len(self.history) else float("nan")

    def summary(self) -> dict:
        return {"test_top1": self.test["top1"], "test_top5": self.test["top5"], "test_loss": self.test["loss"],
                "final_val_top1": self.final_val_top1, "best_val_top1": self.best_val_top1,
                "mean_val_top1": self.mean_val_top1, "train_seconds": self.train_seconds,
                "train_images_per_second": self.images_per_second}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _uses_amp(device: torch.device, amp: bool) -> bool:
    return amp and device.type == "cuda"


def _autocast(device: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=_uses_amp(device, amp))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights only; BN parameters and biases (1-D) are left free."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_linear_decay(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: 0 -> 1 over the warm-up, then linearly down to 0 at the last step."""
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return f


def distillation_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float, label_smoothing: float):
    """(1 - alpha) * CE(labels) + alpha * T^2 * KL(teacher_T || student_T) (Hinton et al. 2015)."""
    ce = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    t = temperature
    kd = F.kl_div(F.log_softmax(student_logits.float() / t, 1), F.log_softmax(teacher_logits.float() / t, 1),
                  reduction="batchmean", log_target=True) * t * t
    return (1 - alpha) * ce + alpha * kd


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 1024, device=None, amp: bool = True) -> dict:
    """Top-1 and top-5 accuracy (percent) and mean cross-entropy on `split`, in eval mode."""
    if device is None:  # a converted INT8 model has no parameters and runs on the CPU only
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    was_training = model.training
    model.eval()
    channels_last = _uses_amp(device, amp)
    correct1 = correct5 = 0
    loss_sum = 0.0
    split = split.to(device)
    for x, y in Batches(split, batch_size, train=False, channels_last=channels_last):
        with _autocast(device, amp):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top5 = logits.topk(min(5, logits.shape[1]), 1).indices
        correct1 += (top5[:, 0] == y).sum().item()
        correct5 += (top5 == y[:, None]).any(1).sum().item()
    model.train(was_training)
    n = max(1, len(split))
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss_sum / n}


def fit(model: nn.Module, data: CifarData, cfg: TrainConfig, *, teacher: nn.Module | None = None, device=None,
        step_hook: Callable[[nn.Module, int, int], None] | None = None,
        epoch_hook: Callable[[nn.Module, int, int], None] | None = None) -> FitResult:
    """Train `model` in place on `data.train`; validate each epoch; test once, after the last epoch.

    `step_hook(model, step, total_steps)` runs after every optimiser step (sparsity schedules);
    `epoch_hook(model, epoch, epochs)` runs before every epoch (QAT observer / BN freezing).
    """
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    channels_last = _uses_amp(device, cfg.amp)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if teacher is not None:
        teacher.to(device).eval()
        if channels_last:
            teacher.to(memory_format=torch.channels_last)
    data = data.to(device)
    batches = Batches(data.train, cfg.batch_size, train=True, generator=gen, channels_last=channels_last)
    steps_per_epoch = len(batches)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_linear_decay(total, math.ceil(cfg.warmup_epochs * steps_per_epoch)))
    forward = torch.compile(model) if cfg.compile else model

    rows, step, train_time, images = [], 0, 0.0, 0
    bar = tqdm(total=total, desc=cfg.desc, disable=not cfg.progress, leave=False)
    for epoch in range(cfg.epochs):
        if epoch_hook is not None:
            epoch_hook(model, epoch, cfg.epochs)
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        for x, y in batches:
            with _autocast(device, cfg.amp):
                logits = forward(x)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(x)
                    loss = distillation_loss(logits, t_logits, y, cfg.distill_alpha, cfg.distill_temperature, cfg.label_smoothing)
                else:
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step_hook is not None:
                step_hook(model, step, total)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        train_time += seconds
        images += seen
        val = evaluate(model, data.val, cfg.eval_batch_size, device, cfg.amp) if len(data.val) else {"top1": float("nan"), "top5": float("nan"), "loss": float("nan")}
        rows.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum.item() / max(1, seen),
                     "train_top1": 100.0 * correct.item() / max(1, seen), "val_top1": val["top1"], "val_top5": val["top5"],
                     "val_loss": val["loss"], "seconds": seconds})
        bar.set_postfix(epoch=epoch + 1, loss=f"{rows[-1]['train_loss']:.3f}", val=f"{val['top1']:.1f}")
    bar.close()
    test = evaluate(model, data.test, cfg.eval_batch_size, device, cfg.amp)
    model.eval()
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    return FitResult(pd.DataFrame(rows, columns=["epoch", "lr", "train_loss", "train_top1", "val_top1", "val_top5", "val_loss", "seconds"]),
                     test, train_time, images / train_time if train_time > 0 else float("nan"))

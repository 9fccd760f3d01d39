"""`fit` and `evaluate`: the one trainer behind the baseline, pruning fine-tunes, sparse schedules and QAT.

SGD with Nesterov momentum, a linear warm-up then linear decay to zero (per step), label smoothing, no
weight decay on BN parameters and biases, optional knowledge distillation from a teacher. It trains in
bf16 autocast with channels_last tensors wherever bf16 is native and faster (CUDA; CPUs with AMX, or AMD
with AVX512-BF16, where it is 2.5-3x faster than fp32: `bf16_pays`), in fp32 elsewhere (channels_last
on CPUs); `precision` forces either.
The accuracy it reports is the final epoch's on the test set, evaluated in fp32, next to the validation
curve; it never picks a best epoch on the test set.

Long runs survive being killed: with `state_path`, the whole training state (weights, optimiser,
schedule position, RNG streams, history) is written atomically after every epoch, and a later call with
the same path carries on from the last finished epoch to the same result as an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import Batches, CifarData, Split, model_batches, reiterable
from .kernels import channels_last_training
from .files import atomic_write_bytes, write_json
from .device import PRECISIONS, autocast, channels_last_pays, default_device, resolve_precision
from .provenance import git_commit



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
    precision: str = "auto"  # "auto": bf16 autocast + channels_last where bf16 is native and faster, else fp32
    compile: bool = False
    distill_alpha: float = 0.9  # weight of the distillation term when a teacher is given
    distill_temperature: float = 4.0
    seed: int = 0
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive whole number, got {v!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not self.warmup_epochs >= 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def identity(self, device=None) -> dict:
        """What decides the trained weights: every field but display and eval batching. Without `device`, the
        precision as requested (a step's cache key: `auto` stays `auto` on every machine); with it, resolved for
        that device (a saved training state resumes only in the arithmetic it started in)."""
        out = {k: v for k, v in self.to_dict().items() if k not in ("progress", "desc", "eval_batch_size")}
        if device is not None:
            out["precision"] = resolve_precision(self.precision, device)
        return out


@dataclass
class FitResult:
    history: pd.DataFrame  # one row per epoch: epoch, lr, train_loss, train_top1, val_top1, val_top5, val_loss, seconds
    test: dict  # final-epoch test metrics: top1, top5, loss, and pred (each test image's top-1 class)
    train_seconds: float
    images_per_second: float
    wall_seconds: float = float("nan")  # training + per-epoch validation + final test, summed over resumed runs
    # the committed resume points this training continued from (`resume_point.py`), oldest first; [] when none
    resumed_from: list = field(default_factory=list)

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
                "test_top1_bf16": self.test.get("top1_bf16", float("nan")), "wall_seconds": self.wall_seconds,
                "final_val_top1": self.final_val_top1, "best_val_top1": self.best_val_top1,
                "mean_val_top1": self.mean_val_top1, "train_seconds": self.train_seconds,
                "train_images_per_second": self.images_per_second}


PROGRESS_SUFFIX = ".progress.json"


def progress_path(state_path: str | Path) -> Path:
    """Where a saved training state declares the seconds it cost (read by the step cache, so a step finished
    over several attempts records its whole compute time)."""
    state_path = Path(state_path)
    return state_path.with_name(state_path.stem + PROGRESS_SUFFIX)


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
def evaluate(model: nn.Module, split, batch_size: int = 1024, device=None, precision: str = "fp32",
             predictions: bool = False, flip: bool = False) -> dict:
    """Top-1 and top-5 accuracy (percent) and mean cross-entropy on `split`, in eval mode (fp32 unless asked).

    `split`: a `Split` (batched here, `batch_size` images at a time), or any iterable of (images, labels) batches
    such as a DataLoader (its own batches; uint8 images are normalised as a Split's, float images are used as given).

    `predictions=True` adds `pred`, the top-1 class of every image (a CPU int64 tensor, in `split`'s order),
    so that two models can be compared image by image (`compress.paired`). `flip=True` scores the mean of
    the logits of each image and its mirror image (test-time flip: training sees both, so it is a free
    second view at twice the evaluation cost); the project's reported numbers never use it."""
    if device is None:  # a converted INT8 model has no parameters and runs on the CPU only
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    was_training = model.training
    model.eval()
    channels_last = precision == "bf16"
    correct1 = correct5 = 0
    loss_sum = 0.0
    preds = []
    if isinstance(split, Split):
        split = split.to(device)
        batches = Batches(split, batch_size, train=False, channels_last=channels_last)
    else:
        batches = model_batches(split, device, channels_last)
    seen = 0
    for x, y in batches:
        with autocast(device, precision):
            logits = model(x).float()
            if flip:
                logits = (logits + model(x.flip(3)).float()) / 2
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top5 = logits.topk(min(5, logits.shape[1]), 1).indices
        correct1 += (top5[:, 0] == y).sum().item()
        correct5 += (top5 == y[:, None]).any(1).sum().item()
        if predictions:
            preds.append(top5[:, 0].cpu())
        seen += len(y)
    model.train(was_training)
    n = max(1, seen)
    out = {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss_sum / n}
    if predictions:
        out["pred"] = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
    return out


NO_SCORES = {"top1": float("nan"), "top5": float("nan"), "loss": float("nan")}  # no validation / test data given


def _present(split) -> bool:
    """Validation data to score: a non-empty Split, or any batches."""
    return split is not None and (not isinstance(split, Split) or len(split) > 0)


HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "train_top1", "val_top1", "val_top5", "val_loss", "seconds"]
STATE_FORMAT = "compress-train-state-v1"


def save_state(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path, identity: dict) -> dict | None:
    """The saved state of this very run, or None (absent, unreadable, or another run's state: start afresh)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an unreadable state costs the epochs since, never the run
        print(f"warning: ignoring unreadable training state {path} ({e.__class__.__name__}); starting afresh", flush=True)
        return None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or not _same_run(state, identity):
        print(f"warning: {path} belongs to another run; starting afresh", flush=True)
        return None
    return state


def _same_run(state: dict, identity: dict) -> bool:
    """A full state continues only in its own arithmetic; one made from a resume point (rounded weights, fresh
    momentum: `resume_point.py`) continues in any precision."""
    saved = state.get("identity")
    if state.get("resumed_from") and isinstance(saved, dict):
        return {k: v for k, v in saved.items() if k != "precision"} == \
            {k: v for k, v in identity.items() if k != "precision"}
    return saved == identity


class Heartbeat:
    """A plain progress line at least every `every` seconds (images, img/s, time left), because a log file shows
    tqdm's bar as one line that never ends and the first per-epoch line of a CPU run can be half an hour away."""

    def __init__(self, desc: str, total: int, start: int, enabled: bool = True, every: float = 60.0):
        self.desc, self.total, self.start, self.enabled, self.every = desc, total, start, enabled, every
        self.t0 = self.last = time.perf_counter()

    def step(self, step: int, epoch: int, epochs: int, seen: int, images: int | None, epoch_seconds: float) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < self.every or step <= self.start:
            return
        self.last = now
        per_step = (now - self.t0) / (step - self.start)
        of = f"/{images}" if images else ""  # a user's batches may not say how many images an epoch holds
        print(f"[{self.desc}] epoch {epoch + 1}/{epochs}: {seen}{of} images, {seen / max(epoch_seconds, 1e-9):.0f} "
              f"img/s, about {_minutes(per_step * (self.total - step))} of training left", flush=True)


def _minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def fit(model: nn.Module, data, cfg: TrainConfig, *, teacher: nn.Module | None = None, device=None,
        step_hook: Callable[[nn.Module, int, int], None] | None = None,
        epoch_hook: Callable[[nn.Module, int, int], None] | None = None,
        state_path: str | Path | None = None, val=None, test=None) -> FitResult:
    """Train `model` in place on `data.train`; validate each epoch; test once, after the last epoch, in fp32.

    `data`: a `CifarData` (its training split shuffled and augmented here, `cfg.batch_size` images a step, with its
    own val and test splits), or any iterable of (images, labels) training batches with a length, such as a
    DataLoader (its own batches, shuffling and augmentation), with `val` and `test` optional: a Split or batches
    (without them the history's val columns and the result's test metrics are NaN).
    `step_hook(model, step, total_steps)` runs after every optimiser step (sparsity schedules);
    `epoch_hook(model, epoch, epochs)` runs before every epoch (QAT observer / BN freezing).
    `state_path`: save the full training state there after every epoch and resume from it if present.
    """
    if isinstance(data, CifarData) and (val is not None or test is not None):
        raise ValueError("a CifarData brings its own val and test splits: pass val= and test= only with batches")
    if isinstance(data, Split):
        raise TypeError("fit trains on a CifarData or on (images, labels) batches such as a DataLoader, not on a "
                        "bare Split (it needs validation and test data beside it)")
    if not isinstance(data, CifarData):
        data, val, test = reiterable(data), _optional(val), _optional(test)
        if not hasattr(data, "__len__"):
            raise TypeError(f"fit needs the number of batches per epoch for its learning-rate schedule: pass batches "
                            f"with a length (a DataLoader, a list), not a {type(data).__name__}")
        if len(data) == 0:
            raise ValueError("fit got no training batches")
    device = torch.device(device) if device is not None else default_device()
    precision = resolve_precision(cfg.precision, device)
    model.to(device)
    # channels_last where it pays, except the convolutions that oneDNN's channels_last backward gets wrong
    with channels_last_training(model, device, channels_last_pays(precision, device)) as channels_last:
        return _fit(model, data, cfg, teacher, device, precision, channels_last, step_hook, epoch_hook, state_path,
                    val, test)


def _optional(batches):
    return None if batches is None else reiterable(batches)


class _LoaderBatches:
    """A user's training batches (a DataLoader, a list) in the shape `_fit` iterates: on the device, normalised."""

    def __init__(self, batches, device, channels_last: bool):
        self.batches, self.device, self.channels_last = batches, device, channels_last

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return model_batches(self.batches, self.device, self.channels_last)

    @property
    def images(self) -> int | None:
        """Images per epoch where the batches know it (a DataLoader's dataset), else None."""
        dataset = getattr(self.batches, "dataset", None)
        return len(dataset) if hasattr(dataset, "__len__") else None


def _fit(model, data, cfg, teacher, device, precision, channels_last, step_hook, epoch_hook, state_path,
         val=None, test=None) -> FitResult:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    if teacher is not None:
        teacher.to(device).eval()
        if channels_last:
            teacher.to(memory_format=torch.channels_last)
    if isinstance(data, CifarData):
        data = data.to(device)
        batches = Batches(data.train, cfg.batch_size, train=True, generator=gen, channels_last=channels_last)
        val, test, epoch_images = data.val, data.test, len(data.train)
        run = {"train_images": len(data.train)}
    else:  # a user's batches: their shuffling and augmentation, cfg.batch_size unused
        batches = _LoaderBatches(data, device, channels_last)
        epoch_images = batches.images
        run = {"train_images": epoch_images, "train_batches": len(batches)}
    steps_per_epoch = len(batches)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_linear_decay(total, math.ceil(cfg.warmup_epochs * steps_per_epoch)))
    forward = torch.compile(model) if cfg.compile else model

    rows, step, train_time, images, start, wall, commits, resumed_from = [], 0, 0.0, 0, 0, 0.0, [], []
    state_path = Path(state_path) if state_path is not None else None
    identity = {**cfg.identity(device), **run, "distill": teacher is not None}
    state = load_state(state_path, identity) if state_path is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        if "optimizer" in state:  # absent in a state made from a resume point: momentum restarts from zero
            opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        for group, lr in zip(opt.param_groups, sched.get_last_lr()):  # the schedule's rate, not the first step's
            group["lr"] = lr
        try:
            gen.set_state(state["generator"])
        except (RuntimeError, TypeError, ValueError):  # another device's generator (a point from a GPU, say)
            if not state.get("resumed_from"):
                raise
            gen.manual_seed(cfg.seed * 1_000_003 + state["epoch"])
            state["resumed_from"][-1]["data_order"] = "reseeded: the point's generator was another device's"
        torch.set_rng_state(state["cpu_rng"])
        rows, step, train_time, images, start = state["history"], state["step"], state["train_seconds"], state["images"], state["epoch"]
        wall = state["wall_seconds"]
        commits = state.get("commits", ["unknown"])
        resumed_from = list(state.get("resumed_from") or [])
        if cfg.progress:
            print(f"[{cfg.desc}] resuming after epoch {start}/{cfg.epochs} from {state_path}", flush=True)

    if state_path is not None:  # what this run carries from earlier attempts (none when it starts afresh), by which code
        commits = commits + [c for c in [git_commit()] if c not in commits]
        write_json(progress_path(state_path), {"seconds": wall, "carried": wall, "epoch": start, "epochs": cfg.epochs,
                                               "commits": commits})
    wall_t0 = time.perf_counter()
    bar = tqdm(total=total, initial=step, desc=cfg.desc, disable=not cfg.progress, leave=False, mininterval=5)
    line = Heartbeat(cfg.desc, total, step, enabled=cfg.progress)
    for epoch in range(start, cfg.epochs):
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
            with autocast(device, precision):
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
            loss_sum += loss.detach().float() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
            line.step(step, epoch, cfg.epochs, seen, epoch_images, time.perf_counter() - t0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        train_time += seconds
        images += seen
        scores = evaluate(model, val, cfg.eval_batch_size, device, precision) if _present(val) else dict(NO_SCORES)
        rows.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum.item() / max(1, seen),
                     "train_top1": 100.0 * correct.item() / max(1, seen), "val_top1": scores["top1"],
                     "val_top5": scores["top5"], "val_loss": scores["loss"], "seconds": seconds})
        if state_path is not None:
            wall_now = wall + time.perf_counter() - wall_t0
            save_state(state_path, {"format": STATE_FORMAT, "identity": identity, "epoch": epoch + 1, "step": step,
                                     "model": model.state_dict(), "optimizer": opt.state_dict(),
                                     "scheduler": sched.state_dict(), "generator": gen.get_state(),
                                     "cpu_rng": torch.get_rng_state(), "history": rows,
                                     "train_seconds": train_time, "images": images,
                                     "wall_seconds": wall_now, "commits": commits, "resumed_from": resumed_from})
            # what the saved epochs cost and which code ran them, for the step cache when a later attempt resumes
            write_json(progress_path(state_path), {"seconds": wall_now, "carried": wall, "epoch": epoch + 1,
                                                   "epochs": cfg.epochs, "commits": commits})
        if cfg.progress:
            r = rows[-1]
            bar.write(f"[{cfg.desc}] epoch {epoch + 1}/{cfg.epochs}  loss {r['train_loss']:.3f}  train {r['train_top1']:.2f}%  "
                      f"val {r['val_top1']:.2f}%  {seconds:.0f} s ({seen / seconds:.0f} img/s, {precision})")
    bar.close()
    tested = evaluate(model, test, cfg.eval_batch_size, device, "fp32", predictions=True) if test is not None else dict(NO_SCORES)
    if precision == "bf16" and test is not None:  # what the bf16 path would have reported: evidence that fp32 testing changes nothing
        tested["top1_bf16"] = evaluate(model, test, cfg.eval_batch_size, device, "bf16")["top1"]
    model.eval()
    return FitResult(pd.DataFrame(rows, columns=HISTORY_COLUMNS), tested, train_time,
                     images / train_time if train_time > 0 else float("nan"), wall + time.perf_counter() - wall_t0,
                     resumed_from)

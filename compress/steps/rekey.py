"""Move step-cache entries of key version 1 (each key held the whole profile) to their version-2 keys (each
step names what it reads), so hours of cached training are reused, not retrained.

    python -m compress.steps.rekey data/cache/steps            # move, printing each old -> new folder
    python -m compress.steps.rekey data/cache/steps --dry-run  # only say what would move
    python -m compress.steps.rekey ROOT --precision bf16       # when the steps' files do not say which

A version-2 training key holds the *resolved* training precision (bf16 or fp32) where version 1 held `auto`;
it is read from the machine each step's own files name (bf16 where `train.bf16_pays` holds for its CPU
features), or given with `--precision`. The INT8 steps are not moved: their latency is now timed by fresh
processes, so they are recomputed. Baseline and budget steps already had narrow keys and stay as they are.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from ..files import read_json, read_table, write_json
from ..train import TrainConfig
from .cache import DONE, config_key
from .session import KEY_VERSION

LEFT = ("int8", "pruned_int8")  # recomputed: their algorithm (fresh-process latency) changed


def precision_from_device(device: str) -> str | None:
    """The precision `auto` resolved to on the machine a provenance `device` string names, or None."""
    match = re.search(r"\[(?:[^;\]]*;)?\s*([^\]]*)\]", device or "")
    if not match:
        return None
    features = {f.strip() for f in match.group(1).split(",")}
    amd = "AMD" in device
    return "bf16" if "AMX" in features or (amd and "AVX512-BF16" in features) else "fp32"


def _precision_of(folder: Path) -> str | None:
    """What the step's own files say of the machine it ran on."""
    for path in sorted(folder.glob("*.csv")) + sorted(folder.glob("*.json")):
        if path.name == DONE:
            continue
        try:
            prov = read_table(path)[1] if path.suffix == ".csv" else read_json(path).get("provenance", {})
        except (OSError, ValueError, AttributeError):
            continue
        found = precision_from_device(str(prov.get("device", "")))
        if found:
            return found
    return None


def _identity(finetune: dict, precision: str) -> dict:
    """A version-1 fine-tune config (`TrainConfig.to_dict()`, display fields set to None) as `identity()`."""
    fields = {k: v for k, v in finetune.items() if k not in ("progress", "desc")}
    cfg = TrainConfig(**{**fields, "progress": False})
    return cfg.identity() | {"precision": precision if cfg.precision == "auto" else cfg.precision}


def new_key(name: str, old: dict, precision: str | None) -> dict | None:
    """The version-2 key of a version-1 entry `name` with key `old`; None for a step that is not moved."""
    if "profile" not in old or name in LEFT:
        return None
    p = old["profile"]
    key = {"step": name, "key_version": KEY_VERSION, "arch": old["arch"], "width": float(p["width"]),
           "seed": old["seed"], "data": old["data"]}
    trains = name in ("prune_round", "finetune_ratios", "sparse")
    if trains and precision is None:
        raise ValueError(f"cannot tell which precision the cached {name} step trained in: pass --precision bf16|fp32")
    if name == "sensitivity":
        return key | {"baseline": old["baseline"], "ratios": old["ratios"], "criterion": old["criterion"],
                      "layers": old.get("layers"),
                      "taylor_images": old.get("taylor_images") if old["criterion"] == "taylor" else None,
                      "eval_size": old.get("eval_size", p["sensitivity_eval_size"])}
    if name == "prune_round":
        return key | {k: old[k] for k in ("baseline", "config", "ratios", "rounds", "round", "criterion", "round_to",
                                         "distill")} | {"rescale": old.get("rescale", False),
                                                        "finetune": _identity(old["finetune"], precision)}
    if name == "finetune_ratios":
        return key | {k: old[k] for k in ("baseline", "ratios", "criterion", "distill")} | {
            "rescale": old.get("rescale", False), "finetune": _identity(old["finetune"], precision)}
    if name == "sparse":
        cfg = TrainConfig(epochs=old["epochs"], batch_size=p["batch_size"], lr=old["lr"], weight_decay=p["weight_decay"],
                          label_smoothing=p["label_smoothing"], warmup_epochs=min(1.0, p["warmup_epochs"]),
                          precision=p["precision"], seed=old["seed"])
        identity = cfg.identity() | {"precision": precision if cfg.precision == "auto" else cfg.precision}
        return key | {"baseline": old["baseline"], "target": old["target"], "distill": old["distill"],
                      "finetune": identity}
    if name == "fixed_point":
        return key | {k: old[k] for k in ("baseline", "bits", "methods", "calib")}
    if name == "combined":
        return key | {k: old[k] for k in ("baseline", "pruned", "sparse", "calib")} | {"backend": old.get("backend", "x86")}
    return None


def rekey(root: str | Path, *, precision: str | None = None, dry_run: bool = False) -> list[tuple[str, str]]:
    """Move every finished version-1 entry under `root` to its version-2 folder (done.json rewritten with the new
    key and where it came from); returns the (old, new) folder names. An entry whose new folder exists stays."""
    moved = []
    for done in sorted(Path(root).glob(f"*/{DONE}")):
        folder = done.parent
        if ".damaged-" in folder.name:  # set aside by the cache: never trusted again
            continue
        record = read_json(done)
        name, old = record.get("name"), record.get("config", {})
        key = new_key(name, old, precision or _precision_of(folder)) if name not in LEFT else None
        if key is None:
            continue
        target = folder.with_name(f"{name}-{config_key(key)}")
        if target.exists():
            print(f"kept {folder.name}: {target.name} exists already", flush=True)
            continue
        moved.append((folder.name, target.name))
        print(f"{'would move' if dry_run else 'moved'} {folder.name} -> {target.name}", flush=True)
        if not dry_run:
            write_json(done, {**record, "config": key, "rekeyed_from": folder.name})
            os.replace(folder, target)
    return moved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="move version-1 step-cache entries to their version-2 keys")
    ap.add_argument("root", help="the step cache folder (e.g. data/cache/steps)")
    ap.add_argument("--precision", choices=("bf16", "fp32"), help="what the cached steps trained in, where their "
                    "files do not say")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    if not Path(args.root).is_dir():
        print(f"error: no step cache at {args.root}", file=sys.stderr)
        return 2
    try:
        moved = rekey(args.root, precision=args.precision, dry_run=args.dry_run)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(moved)} entries {'to move' if args.dry_run else 'moved'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

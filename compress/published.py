"""Published models: the weights behind the committed tables, in git, so a number is checked by evaluating one
file and a run continues on any machine from what is published instead of recomputing it.

    results/<arch>/models/manifest.json      every published step: its key, provenance and small files
    results/<arch>/models/baseline.pt        a step's model, named by what it is (fp16 where that keeps the predictions)

A published step is a finished step of the step cache (`steps/cache.py`) whose key and files are written here:
its model file, when it has one, next to the manifest, and its small files (records, histories, tables) inside
the manifest. The step cache serves a published step whose key matches instead of computing it. Each model
file is a plain dict of tensors (`torch.load(path, weights_only=True)`), so it also loads without this package.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint
from .files import REPO_ROOT, read_json, write_json

FORMAT = "compress-published-v1"
MODELS = "models"  # results/<arch>/models/
MANIFEST = "manifest.json"
RESULTS_ENV = "COMPRESS_RESULTS"  # where published results live (default: the repository's results/)
MAX_FILE_MB, MAX_TOTAL_MB = 50, 200  # what git may hold: no model file over 50 MB, 200 MB of models in all
FP16_MIN_AGREEMENT = 0.999  # fp16 is stored where the rounded weights keep at least this share of test predictions


class PublishedError(ValueError):
    """A published model is missing, damaged, or not what its manifest says: one line that says which."""


def results_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get(RESULTS_ENV) or REPO_ROOT / "results")


def models_dir(arch: str, root: str | Path | None = None) -> Path:
    return results_root(root) / arch / MODELS


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(arch: str, root: str | Path | None = None) -> dict:
    """The architecture's manifest, or an empty one when nothing is published."""
    path = models_dir(arch, root) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "arch": arch, "steps": {}}
    try:
        manifest = read_json(path)
    except ValueError as e:
        raise PublishedError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("steps"), dict):
        raise PublishedError(f"{path} is not a published-models manifest (expected format {FORMAT!r})")
    return manifest


def write_manifest(arch: str, manifest: dict, root: str | Path | None = None) -> Path:
    return write_json(models_dir(arch, root) / MANIFEST, manifest)


def published_archs(root: str | Path | None = None) -> list[str]:
    base = results_root(root)
    return sorted(p.parent.parent.name for p in base.glob(f"*/{MODELS}/{MANIFEST}")) if base.is_dir() else []


def model_name(step: str, meta: dict) -> str:
    """A file name that says what the model is: `baseline`, `pruned-aggressive`, `budget-global-8x`,
    `budget-none-1x` (the equal-budget control), `scratch-4x`, `sparse`, a seed suffix where not the run's."""
    def clean(text) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-")

    if step == "baseline":
        name = "baseline"
    elif step == "prune_round":
        name = f"pruned-{clean(meta.get('config'))}"
    elif step == "budget_round":
        name = f"budget-{clean(meta.get('method'))}-{float(meta.get('target')):g}x"
    elif step == "budget_scratch":
        name = f"scratch-{float(meta.get('target')):g}x"
    else:
        name = clean(step)
    seed = meta.get("seed_suffix")
    return f"{name}-seed{seed}" if seed is not None else name


# ----------------------------------------------------------------------------- fp16 storage
def rounded_to_fp16(model: nn.Module) -> nn.Module:
    """A copy of `model` whose floating-point weights went through fp16 (and back to fp32): what a stored fp16
    file gives on loading."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for t in [*out.parameters(), *out.buffers()]:
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))
    return out


def fp16_fits(model: nn.Module) -> bool:
    """Whether every floating-point weight is inside fp16's finite range (else fp32 is stored)."""
    limit = torch.finfo(torch.float16).max
    return all(not t.is_floating_point() or bool(t.detach().abs().max() <= limit) if t.numel() else True
               for t in model.state_dict().values())


# ----------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Entry:
    """One published step as its manifest lists it."""

    arch: str
    folder: str  # the step cache folder name (`<step>-<key hash>`)
    record: dict
    root: Path

    @property
    def model_file(self) -> Path | None:
        model = self.record.get("model")
        return self.root / self.arch / MODELS / model["file"] if model else None


def entries(arch: str, root: str | Path | None = None) -> list[Entry]:
    base = results_root(root)
    return [Entry(arch, folder, record, base) for folder, record in read_manifest(arch, root)["steps"].items()]


def check_file(entry: Entry) -> Path:
    """The entry's model file after checking its size and sha256 against the manifest."""
    path, model = entry.model_file, entry.record.get("model") or {}
    if path is None:
        raise PublishedError(f"{entry.folder} has no model file")
    if not path.is_file():
        raise PublishedError(f"{path.name}: missing (the manifest lists it)")
    if path.stat().st_size != model.get("bytes"):
        raise PublishedError(f"{path.name}: {path.stat().st_size} bytes, the manifest says {model.get('bytes')} "
                             f"(damaged or replaced)")
    if file_sha256(path) != model.get("sha256"):
        raise PublishedError(f"{path.name}: sha256 differs from the manifest (damaged or replaced)")
    return path


def find_model(arch: str, name: str = "baseline", root: str | Path | None = None) -> Entry:
    """The published entry whose model file is `<name>.pt`; else one line saying what is missing and the command
    that makes it (a user's script stops on this line, so it must stand alone)."""
    known = [e for e in entries(arch, root) if e.record.get("model")]
    for e in known:
        if e.record["model"]["file"] == f"{name}.pt":
            return e
    listed = ", ".join(sorted(e.record["model"]["file"].removesuffix(".pt") for e in known)) or "none"
    results = _shown(results_root(root))
    if name == "baseline":
        make = (f"`python -m compress train --arch {arch} --profile cpu --results {results}` trains one and publishes "
                f"it there (hours on a CPU)")
    else:
        make = (f"`python -m compress reproduce --profile cpu --arch {arch} --allow-long --publish` computes the "
                f"study's {arch} models and publishes them (hours on a CPU)")
    raise PublishedError(f"no published {arch} model {name!r} in {models_dir(arch, root)} (published: {listed}); "
                         f"{make}")


def _shown(path: Path) -> str:
    """`path` as a command line should name it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def load_published(arch: str, name: str = "baseline", root: str | Path | None = None) -> nn.Module:
    """A published model, its sha256 checked, as an fp32 `nn.Module` in eval mode on the CPU.

        model = compress.load_published("resnet18")                 # the baseline
        model = compress.load_published("vgg16_bn", "budget-global-8x")
    """
    path = check_file(find_model(arch, name, root))
    model, _ = load_checkpoint(path, arch)
    return model.float().eval()


# ----------------------------------------------------------------------------- what git may hold
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".onnx", ".bin", ".safetensors", ".pt2", ".npz")


def is_model_file(path: str) -> bool:
    return path.endswith(MODEL_SUFFIXES)


def limit_violations(sizes: dict[str, int]) -> list[str]:
    """What breaks the repository's rule for model files (path relative to the repository -> bytes): each must
    lie in `results/<arch>/models/` (a published model) or its `resume/` folder (a resume point), none over
    `MAX_FILE_MB`, and the published models together within `MAX_TOTAL_MB`."""
    out = []
    published = 0
    for path, size in sorted(sizes.items()):
        parts = path.split("/")
        in_models = len(parts) >= 4 and parts[0] == "results" and parts[2] == MODELS
        is_published = in_models and len(parts) == 4
        is_resume_point = in_models and len(parts) == 5 and parts[3] == "resume"
        if not (is_published or is_resume_point):
            out.append(f"{path}: a model file outside results/<arch>/{MODELS}/ and its resume/ folder")
        if size > MAX_FILE_MB * 1e6:
            out.append(f"{path}: {size / 1e6:.1f} MB, over {MAX_FILE_MB} MB")
        if is_published:
            published += size
    if published > MAX_TOTAL_MB * 1e6:
        out.append(f"published model files total {published / 1e6:.0f} MB, over {MAX_TOTAL_MB} MB")
    return out

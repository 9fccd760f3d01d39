"""The study, unit by unit, in the order that decides results first (the notebooks run the same steps in the
order a reader follows them; this runs them in the order a scarce CPU should).

Each unit is a few calls into `steps`, so each step is cached, resumable from its saved epoch or its committed
resume point, and published into `results/<arch>/models/` as it finishes (a session writing the repository's
results/ publishes as it goes). A unit whose steps are all cached or published costs seconds, so the list is
simply run from the top every window. When the last unit is done, the notebooks run from the cache
(`reproduce`), with no training, and write the tables, figures and executed notebooks.

The order: ResNet18's baseline and its budget curve (the four methods at the selection budget, the chosen one
at every other budget, the equal-budget control) with its batch-1 latency and onnxruntime INT8, then the same
for VGG16_BN; then quantization; the controls (from scratch, more seeds); sparse; and last the iterative
configurations, whose question the curve already answers at every budget. After each architecture's curve,
and again at the end, a `report` unit writes its tables into the results folder (replacing the tables it held on
another data set), draws the figures and regenerates the README's generated blocks.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

STUDY_ARCHS = ("resnet18", "vgg16_bn")


@dataclass(frozen=True)
class Unit:
    arch: str
    name: str
    summary: str
    run: Callable  # (Study, arch) -> None


class Study:
    """One session per architecture, made on first use, over one loaded data set."""

    def __init__(self, profile: str = "cpu", source=None, seed: int = 0, device=None, results_dir=None):
        self.profile, self.source, self.seed, self.device, self.results_dir = profile, source, seed, device, results_dir
        self._sessions, self._data, self._baselines, self._scans = {}, None, {}, {}

    def session(self, arch: str, **overrides):
        """The architecture's session; with `overrides`, the same session (the same tables, models and
        published steps) seen through a profile with those fields changed."""
        from .data import load_for_profile
        from .profiles import get_profile
        from .steps import Session

        if arch not in self._sessions:
            if self._data is None:
                self._data = load_for_profile(get_profile(self.profile), self.source, seed=self.seed)
            s = Session.create(arch, self.profile, data=self._data, seed=self.seed, device=self.device,
                               results_dir=self.results_dir, published=self.results_dir)
            s.publish_each = True  # each finished step is published at once: a window cut short loses nothing
            self._sessions[arch] = s
        s = self._sessions[arch]
        return dataclasses.replace(s, profile=s.profile.replace(**overrides)) if overrides else s

    def baseline(self, arch: str):
        from . import steps

        if arch not in self._baselines:
            self._baselines[arch] = steps.train_baseline(self.session(arch))
        return self._baselines[arch]

    def scan(self, arch: str):
        from . import steps

        if arch not in self._scans:
            self._scans[arch] = steps.sensitivity(self.session(arch), self.baseline(arch))
        return self._scans[arch]

    def curve(self, arch: str, controls: bool = False):
        """The budget sweep; without `controls`, its seed spread and from-scratch runs are left for later (they
        change no other run's key: a run's key holds its own recipe, not the sweep's)."""
        from . import steps

        overrides = {} if controls else {"budget_seeds": {}, "budget_scratch": {}}
        s = self.session(arch, **overrides)
        sweep = steps.budget_sweep(s, self.baseline(arch), self.scan(arch))
        if not controls:  # its tables say what is still to come, so a reader never takes them for the whole sweep
            for name in ("budget", "budget_layers", "budget_peer"):
                if name in s.table_notes:
                    s.table_notes[name] = {**s.table_notes[name], "controls": "pending: the seed spread and the "
                                           "from-scratch runs come later in the study"}
        return sweep


def _baseline(study: Study, arch: str) -> None:
    study.baseline(arch)


def _curve(study: Study, arch: str) -> None:
    study.curve(arch)


def _latency(study: Study, arch: str) -> None:
    from . import steps

    s = study.session(arch)
    steps.budget_latency(s, study.curve(arch), baseline=study.baseline(arch), round_to_at=s.profile.budget_select_at)


def stale_tables(folder: Path, data_source: str, data_digest: str, keep=()) -> list[Path]:
    """The tables in an architecture's results folder computed on another data set (the old JPEG copy's, say),
    but those named in `keep`: a recomputed architecture holds no number of the old data. A table is compared by
    its data's digest where it recorded one, else by its data's name; one that names no data is left alone."""
    from .files import read_table

    out = []
    for path in sorted(Path(folder).glob("*.csv")):
        try:
            prov = read_table(path)[1]
        except (OSError, ValueError):
            continue
        digest, source = prov.get("data_digest"), prov.get("data_source")
        other = digest != data_digest if digest else (source is not None and source != data_source)
        if path.stem not in keep and other:
            out.append(path)
    return out


def _report(study: Study, arch: str) -> None:
    from . import steps
    from .report.figures import make_figures

    s = study.session(arch)
    for path in stale_tables(Path(s.results_dir) / arch, s.data.source, s.data.digest, keep=s.tables):
        print(f"removing {path}: computed on {read_source(path)}, not on {s.data.source}", flush=True)
        path.unlink()
    steps.save_results(s)
    root = Path(s.results_dir).parent
    readme = root / "README.md"
    make_figures(s.results_dir, root / "assets", (arch,), verbose=False, readme=readme if readme.is_file() else None)


def read_source(path: Path) -> str:
    from .files import read_table

    return str(read_table(path)[1].get("data_source"))


def _quantize(study: Study, arch: str) -> None:
    from . import steps

    s, baseline = study.session(arch), study.baseline(arch)
    steps.fixed_point(s, baseline)
    steps.int8(s, baseline)


def _controls(study: Study, arch: str) -> None:
    study.curve(arch, controls=True)


def _sparse(study: Study, arch: str) -> None:
    from . import steps

    steps.sparse(study.session(arch), study.baseline(arch))


def _iterative(study: Study, arch: str) -> None:
    from . import steps

    s = study.session(arch)
    steps.prune_rounds(s, study.baseline(arch), steps.configurations(s, study.scan(arch)))


def units(archs=STUDY_ARCHS) -> list[Unit]:
    """The study's units in the order they run."""
    first = [("baseline", "the baseline", _baseline),
             ("curve", "the budget curve: four methods at the selection budget, the chosen one at the others, "
                       "the equal-budget control", _curve),
             ("latency", "batch-1 latency of every budget model, eager and onnxruntime FP32 / INT8", _latency),
             ("report", "its tables, figures and README blocks so far", _report)]
    later = [("quantize", "fixed point, INT8 PTQ and QAT in every runtime", _quantize),
             ("controls", "from scratch and the seed spread", _controls),
             ("sparse", "magnitude sparsity, fine-tuned", _sparse),
             ("iterative", "the iterative configurations over rounds", _iterative),
             ("report", "every table, figure and README block", _report)]
    out = [Unit(a, n, t, f) for a in archs for n, t, f in first]
    return out + [Unit(a, n, t, f) for n, t, f in later for a in archs]


def run(study: Study, archs=STUDY_ARCHS, only: list[str] | None = None, out=print) -> list[str]:
    """Run every unit in order (or only those named `arch:unit` / `unit`); returns the units run."""
    todo = [u for u in units(archs) if not only or u.name in only or f"{u.arch}:{u.name}" in only]
    if not todo:
        raise ValueError(f"no unit matches {only}; units: {', '.join(f'{u.arch}:{u.name}' for u in units(archs))}")
    for i, unit in enumerate(todo, 1):
        t0 = time.perf_counter()
        out(f"== unit {i}/{len(todo)}: {unit.arch} {unit.name} ({unit.summary})", flush=True)
        unit.run(study, unit.arch)
        out(f"== unit {i}/{len(todo)}: {unit.arch} {unit.name} done in {(time.perf_counter() - t0) / 60:.1f} min",
            flush=True)
    return [f"{u.arch}:{u.name}" for u in todo]

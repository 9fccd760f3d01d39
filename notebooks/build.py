"""Writes the three architecture notebooks from one template, so they never drift apart.

    python notebooks/build.py                  # rewrite notebooks/{resnet18,vgg16,vgg16_bn}.ipynb (no outputs)
    python notebooks/build.py --keep-outputs   # the same, keeping the published outputs of unchanged cells

The notebooks hold no logic: every cell calls `compress`. The committed notebooks are the ones `python -m compress reproduce --profile cpu --publish` executed, with
their outputs, so a reader sees tables and plots on a code-hosting page; `tests/test_notebooks.py` checks
that their code cells match this template and executes them in the smoke profile.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's compress, also when run as `python notebooks/build.py`
from compress.steps.pipeline import PIPELINE  # noqa: E402  (the order of the sections)
TITLES = {"resnet18": "ResNet18", "vgg16": "VGG16", "vgg16_bn": "VGG16_BN"}


def heading(name: str, body: str):
    """A section's first cell: its number and title from the pipeline list, then `body`."""
    number = next(i for i, s in enumerate(PIPELINE, 1) if s.name == name)
    return new_markdown_cell(f"## {number}. {PIPELINE[number - 1].title}{body}")


def cells(arch: str) -> list:
    """The header (title, parameters, session), then one section per pipeline stage, in `PIPELINE` order."""
    title = TITLES[arch]
    sections = {}
    header = [
        new_markdown_cell(f"""# Compressing {title} on CIFAR-10

Baseline -> layer importance -> iterative structured pruning -> quantization (fixed-point, INT8 PTQ, QAT)
-> pruned / sparse + INT8 -> accuracy against cost. Every step is cached by its configuration: re-running
reuses finished work and resumes after an interruption. Run headless with
`python -m compress reproduce --profile cpu` (or `COMPRESS_PROFILE=cpu jupyter nbconvert --execute ...`),
or change the parameters below and run top to bottom."""),
        new_code_cell(f"""# parameters
ARCH = "{arch}"
PROFILE = None  # "smoke" (seconds), "quick" (CPU minutes), "cpu" (CPU hours) or "full" (GPU); None: $COMPRESS_PROFILE, else full on a GPU, quick on a CPU
DATA = None  # None: $COMPRESS_DATA, else "torchvision"; or a path such as "../shared/cifar-10-batches-bin"
SEED = 0
RESULTS_DIR = None  # where the results tables go; None: runs/<profile>/results""", metadata={"tags": ["parameters"]}),
        new_code_cell("""from compress.allocator import keep_freed_memory

MALLOC_KEPT = keep_freed_memory()  # freed memory stays in this process: CPU evaluation 1.3-1.8x faster (compress/allocator.py)"""),
        new_code_cell("""from compress import budget, interactive, steps
from compress.report import plots

s = steps.Session.create(ARCH, PROFILE, source=DATA, seed=SEED, results_dir=RESULTS_DIR)
print(s.describe())"""),
    ]
    sections['baseline'] = [
        heading('baseline', """
Trained with the profile's recipe (or loaded from the step cache). The accuracy reported is the **final
epoch's** test accuracy; the curves show the validation split carved from the training set."""),
        new_code_cell("""baseline = steps.train_baseline(s)
steps.show(s.tables["baseline"])
plots.training_curves(s.tables["history"], f"{ARCH}: baseline training");"""),
    ]
    sections['importance'] = [
        heading('importance', """
**L1 ranking**: each conv layer's filters sorted by L1 norm, normalised by the largest. A steep curve
means a few filters carry the layer; a flat one means filters are interchangeable.

**Sensitivity**: each conv layer pruned *alone* at increasing ratios, evaluated on the validation split
without retraining. Layers whose curve stays flat can be pruned hard; steep ones should be spared."""),
        new_code_cell("""plots.l1_ranking(steps.l1_ranking(s, baseline), f"{ARCH}: filters ranked by L1 norm");"""),
        new_code_cell("""scan = steps.sensitivity(s, baseline)
plots.sensitivity(scan, f"{ARCH}: sensitivity of each conv layer");"""),
    ]
    sections['prune'] = [
        heading('prune', """
Several ratio configurations, each pruned over rounds with a fine-tune (distilled from the unpruned
baseline) after each. Ratios are **channel** ratios: a conv whose inputs and outputs both lose a
fraction p keeps about (1-p)^2 of its parameters. Look for the configuration that keeps accuracy
while params and MACs fall by an order of magnitude or more."""),
        new_code_cell("""configs = steps.configurations(s, scan)
configs"""),
        new_code_cell("""pruned = steps.prune_rounds(s, baseline, configs)
steps.show(pruned.rounds)
plots.pruning_rounds(pruned.rounds, f"{ARCH}: iterative pruning");"""),
        new_code_cell("""print(f"carried forward (fewest MACs within 1 point on validation): {pruned.best}")
plots.channels_per_layer(pruned.channels, pruned.best);"""),
        new_markdown_cell("""### Does distillation help?
The chosen configuration pruned again with the same ratios and rounds, but fine-tuned without the
unpruned baseline as teacher (or with it, where the profile turned distillation off). The `cpu` profile
skips it (`distill_comparison`): it found no effect on any architecture."""),
        new_code_cell("""if s.profile.distill_comparison:
    steps.show(steps.distillation_effect(s, baseline, pruned))"""),
    ]
    sections['budget'] = [
        heading('budget', """
"Give me 4x fewer MACs": `budget.allocate` finds the channels each layer keeps for a target (within 1%),
by one of three rules: `global` (importance ranked across layers), `sensitivity` (the scan above: least
sensitive layers first) and `uniform` (one ratio everywhere). The sweep reaches each budget in a few
prune + fine-tune steps; the method is chosen on validation at one budget, and two controls keep the
comparison honest: the baseline fine-tuned just as long (equal budget) and the pruned architecture
trained from scratch."""),
        new_code_cell("""allocation = budget.allocate(baseline, "4x", "global")
print(f"4x fewer MACs: {allocation.mac_reduction:.2f}x, {allocation.param_reduction:.2f}x fewer parameters")
steps.show(allocation.table)"""),
        new_code_cell("""curve = steps.budget_sweep(s, baseline, scan)
print(f"allocation method (validation accuracy at {s.profile.budget_select_at:g}x): {curve.chosen}")
steps.show(curve.table)
plots.budget_curve(curve.table, float(s.tables["baseline"].test_top1.iloc[0]), f"{ARCH}: pruning to a MAC budget");"""),
    ]
    sections['ratios'] = [
        heading('ratios', """
Move the sliders (seeded from the sensitivity scan): params, MACs, size and channels per layer update
at once, without training. A MAC target (e.g. `4x`) and its button fill the sliders with the allocation
`budget.allocate` finds for it, to tweak from there. The fine-tune button fine-tunes and evaluates the
chosen ratios with this profile. Without widgets, pass a plain dict to `interactive.preview`."""),
        new_code_cell("""interactive.ratio_panel(s, baseline, scan=scan)"""),
        new_code_cell("""interactive.preview(baseline, ARCH, interactive.seed_ratios(ARCH, baseline, scan, max_drop=2.0))"""),
    ]
    sections['quantize'] = [
        heading('quantize', """
**Fixed-point** (simulated): weights, activations and BN rounded to a bit width (BN folded into the
preceding conv first). **INT8 PTQ** with torch.ao (FX graph mode, x86 backend): `default` (per-tensor
min-max) against `optimal` (per-channel weights, histogram activations). **QAT** fine-tunes with fake
quantization, then converts. Latency is batch-1 on the CPU, median of many runs, at 1 thread and all threads."""),
        new_code_cell("""fixed = steps.fixed_point(s, baseline)
plots.fixed_point(fixed, f"{ARCH}: fixed-point accuracy by bits");"""),
        new_code_cell("""int8 = steps.int8(s, baseline)
steps.show(int8)
plots.quant_comparison(int8, f"{ARCH}: FP32 vs INT8 (CPU)");"""),
    ]
    sections['combine'] = [
        heading('combine', """
The pruned model carried forward quantized to INT8 (PTQ and QAT, PyTorch, onnxruntime, OpenVINO and PT2E), and
unstructured magnitude sparsity (which only shrinks the *compressed* file) combined with INT8."""),
        new_code_cell("""pruned_model = pruned.model(device=s.device)
steps.show(steps.pruned_int8(s, pruned_model, pruned.best, baseline=baseline))"""),
        new_code_cell("""sparse = steps.sparse(s, baseline)  # magnitude pruning to the profile's sparsity, fine-tuned (cached)
combined = steps.combined(s, baseline, pruned_model, pruned.best, sparse)
steps.show(combined)"""),
        new_markdown_cell("""How far pruning and INT8 go together: the smallest pruned configuration quantized the same way
(`vs_baseline_*`: each row against the unpruned baseline on the same test images)."""),
        new_code_cell("""if pruned.smallest != pruned.best:
    steps.show(steps.pruned_int8(s, pruned.model(pruned.smallest, device=s.device), pruned.smallest, baseline=baseline))"""),
    ]
    sections['results'] = [
        heading('results', """
Every model this notebook produced. Up and to the left is better."""),
        new_code_cell("""models = steps.models_table(s)
plots.pareto(models, "macs", f"{ARCH}: accuracy vs MACs")
plots.pareto(models, "latency_ms", f"{ARCH}: accuracy vs CPU latency");"""),
        new_code_cell("""steps.save_results(s)"""),
    ]
    missing = [s.name for s in PIPELINE if s.name not in sections]
    assert not missing and len(sections) == len(PIPELINE), missing  # one section per pipeline stage
    return header + [cell for s in PIPELINE for cell in sections[s.name]]


def build(arch: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells(arch))
    for i, cell in enumerate(nb.cells):
        cell.id = f"{arch}-{i:02d}"  # stable ids: rebuilding gives byte-identical notebooks
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                        "language_info": {"name": "python"}})
    return nb


def refresh(path: Path, arch: str) -> nbformat.NotebookNode:
    """The template's cells, each keeping the outputs an executed notebook at `path` holds for the very same
    source (a cell that changed, or is new, has none until the next published run). Drops papermill's
    injected-parameters cell and its machine-specific paths, so the published file runs anywhere."""
    old = nbformat.read(path, as_version=4)
    executed = {}
    for cell in old.cells:
        if cell.cell_type == "code" and "injected-parameters" not in cell.get("metadata", {}).get("tags", []):
            executed.setdefault(cell.source, cell)
    nb = build(arch)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source in executed:
            cell.outputs = executed[cell.source].get("outputs", [])
            cell.execution_count = executed[cell.source].get("execution_count")
    # when and how long the published run took; its parameters and paths were the publishing machine's
    papermill = {k: v for k, v in old.metadata.get("papermill", {}).items()
                 if k in ("duration", "start_time", "end_time", "exception", "version")}
    if papermill:
        nb.metadata["papermill"] = papermill
    return nb


def main(out_dir: Path = HERE, keep_outputs: bool = False) -> None:
    for arch in TITLES:
        path = out_dir / f"{arch}.ipynb"
        nb = refresh(path, arch) if keep_outputs and path.is_file() else build(arch)
        nbformat.write(nb, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--keep-outputs"]
    main(Path(args[0]) if args else HERE, keep_outputs="--keep-outputs" in sys.argv[1:])

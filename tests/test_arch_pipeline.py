"""Each architecture's notebook pipeline, once, below the notebooks: every step and plot of notebooks/build.py's
template through `compress.steps` (tests/arch_pipeline.py), in the smoke profile at width 0.125. The notebook's
own mechanics (papermill, its parameters, the ratio panel's snapshot) are one run in tests/test_notebooks.py,
which finds vgg16's steps in the cache `notebook_pipeline` (conftest.py) leaves."""
from __future__ import annotations

import re
import sys

import pytest
from torch import nn

import arch_pipeline
from conftest import REPO

from compress import steps
from compress.metrics import count_macs, count_params
from compress.report.tables import load_tables

sys.path.insert(0, str(REPO / "notebooks"))
import build  # noqa: E402  (notebooks/ is not a package)

TABLES = {"baseline", "history", "sensitivity", "pruning", "channels", "budget", "fixed_point", "int8", "pruned_int8",
          "combined", "models"}


def test_the_pipeline_makes_the_template_s_step_calls():
    """arch_pipeline.run makes every `steps.` / `plots.` / `interactive.` / `budget.` call of the notebook (but
    `steps.show`, which only displays), and no other: a call added to the template fails here until the pipeline
    below the notebook makes it too."""
    import inspect

    calls = lambda text: set(re.findall(r"\b(?:steps|plots|interactive|budget)\.\w+\(", text)) - {"steps.show("}  # noqa: E731
    template = calls("\n".join(c.source for c in build.cells("vgg16") if c.cell_type == "code"))
    assert template and calls(inspect.getsource(arch_pipeline.run)) == template


def check_pipeline(s, out: dict) -> None:
    """What the notebook's run must leave, whatever the architecture."""
    tables = load_tables(out["folder"].parent, s.arch)
    assert TABLES <= set(tables) and out["folder"] == s.results_dir / s.arch
    models = tables["models"]
    assert len(models) >= 8 and models.model.is_unique and models.top1.between(0, 100).all()
    assert {"baseline", f"pruned:{out['pruned'].best}", "baseline+int8-optimal", "baseline+qat"} <= set(models.model)
    base = models.set_index("model").loc["baseline"]
    best = models.set_index("model").loc[f"pruned:{out['pruned'].best}"]
    assert best.macs < base.macs and best.params < base.params
    assert count_macs(out["baseline"]) == base.macs and count_params(out["baseline"]) == base.params
    # the pruned model carried forward is the one the table names, and it runs
    assert count_macs(out["pruned"].model(out["pruned"].best)) == best.macs
    assert set(out["configs"]) == set(s.profile.prune_configs)
    assert list(tables["fixed_point"].bits.unique()) == list(s.profile.fixed_point_bits)
    int8 = out["int8"]
    assert {"fp32", "int8-default", "int8-optimal", "qat", "onnx-fp32", "onnx-int8"} <= set(int8.variant)
    assert (int8[int8.variant.str.contains("int8")].size_ratio > 2.5).all()
    assert set(out["pruned_int8"].config) == {out["pruned"].best}
    assert list(out["combined"].variant[:3]) == ["original", "pruned", "pruned+int8"]
    assert out["curve"].complete and out["curve"].chosen in s.profile.budget_methods
    assert abs(out["allocation"].mac_reduction - 4) / 4 <= 0.01
    assert out["preview"].params <= base.params
    if out["pruned"].smallest != out["pruned"].best:
        assert f"pruned:{out['pruned'].smallest}" in set(models.model)


@pytest.mark.parametrize("arch", ["resnet18", "vgg16_bn"])
def test_the_notebook_pipeline_runs_below_the_notebook(arch, tiny_data, smoke_steps, tmp_path, monkeypatch):
    """resnet18: residual streams pruned in step; vgg16_bn: the plain BN network (vgg16, without BN: the notebook
    fixture below). resnet18's baseline, scan and budget sweep are tests/test_budget_steps.py's too: one cache."""
    monkeypatch.setattr("compress.quant.compare.latency.measure", arch_pipeline.fake_measure)
    s = steps.Session.create(arch, "smoke", data=tiny_data, cache_root=smoke_steps,
                             results_dir=tmp_path / "results")
    out = arch_pipeline.run(s)
    check_pipeline(s, out)
    if arch == "resnet18":  # a block's output joins its stage's residual stream: pruned alike or not at all
        channels = out["pruned"].channels
        final = channels[(channels.config == out["pruned"].best) & (channels["round"] == channels["round"].max())]
        width = final.set_index("layer").channels
        for stage in ("layer2", "layer3", "layer4"):
            assert width[f"{stage}.0.conv2"] == width[f"{stage}.1.conv2"] == width[f"{stage}.0.downsample.0"]


def test_vgg16_notebook_pipeline(notebook_pipeline):
    """vgg16 (no BN) on the notebook's data: the same pipeline, whose steps the notebook runs then find cached."""
    s, out = notebook_pipeline
    check_pipeline(s, out)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in out["baseline"].modules())  # nothing to fold or rescale by

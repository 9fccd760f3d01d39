"""One pipeline list (`steps.pipeline.PIPELINE`): the notebook's sections, the CLI's commands and the plan's
rows all follow it, so adding or moving a stage changes the three together."""
import sys
from pathlib import Path

from compress import cli
from compress.profiles import get_profile
from compress.steps.pipeline import PIPELINE, Sizes, Speed, estimate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))
import build  # noqa: E402


def test_the_notebook_has_one_section_per_stage_in_pipeline_order():
    headings = [c.source.splitlines()[0] for c in build.cells("resnet18")
                if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert headings == [f"## {i}. {s.title}" for i, s in enumerate(PIPELINE, 1)]


def test_the_cli_lists_the_pipeline_commands_in_its_order():
    parser = cli.build_parser()
    commands = list(next(a for a in parser._actions if a.dest == "command").choices)
    assert commands == [s.command for s in PIPELINE if s.command] + ["figures", "reproduce", "verify", "study", "publish"]
    assert all(s.summary in parser.description for s in PIPELINE if s.command)


def test_the_plan_estimates_stages_in_pipeline_order_and_grows_with_the_work():
    p, speed, sizes = get_profile("cpu"), Speed(train=200, eval=1000), Sizes(45_000, 5_000, 10_000)
    rows = estimate("resnet18", p, speed, sizes)
    order = [s.name for s in PIPELINE]
    assert [r["step"] for r in rows] == sorted((r["step"] for r in rows), key=order.index)
    assert rows[0]["step"] == "baseline" and all(r["seconds"] > 0 for r in rows)
    baseline = rows[0]["seconds"]
    assert abs(baseline - 18 * (45_000 / 200 + 5_000 / 1000) - 10) < 1e-6  # 18 epochs of train + val, one test pass
    more = {r["step"]: r["seconds"] for r in estimate("resnet18", p.replace(budget_epochs=12), speed, sizes)}
    assert more["budget"] > {r["step"]: r["seconds"] for r in rows}["budget"] and more["baseline"] == baseline

"""Every number the README and docs/results.md quote comes from a committed table.

The generated blocks (the README's first table; the headline, findings, results, targets and figures of
docs/results.md) are checked against the tables by `test_figures.test_the_committed_documents_show_the_committed_results`
and below; here, the hand-written prose around them may hold only the facts listed below, each with where it
comes from, so a number typed by hand cannot slip in.
"""
import re

from compress.files import REPO_ROOT, read_table
from compress.profiles import get_profile

RESULTS = REPO_ROOT / "results"


CHECKED = ("README.md", "docs/results.md")  # the pages that quote results


def _prose(name: str = "docs/results.md") -> str:
    """A page's hand-written words: without its generated blocks, code, comments and link targets."""
    text = (REPO_ROOT / name).read_text()
    text = re.sub(r"<!-- (\w+):start -->.*?<!-- \1:end -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"\]\([^)]*\)", "]", text)


def _in_process_ratios() -> set[str]:
    """The range quoted from `benchmarks/latency_inprocess.py`'s table: in-process latency / fresh processes."""
    table, _ = read_table(RESULTS / "benchmarks" / "latency_inprocess_resnet18.csv")
    ratios = table[table.condition != "fresh"].vs_fresh
    return {f"{ratios.min():.2f}", f"{ratios.max():.1f}"}


def _allowed() -> set[str]:
    cpu = get_profile("cpu")
    quick = get_profile("quick")
    facts = {
        "45,000": 50_000 - cpu.val_size,  # training images of the cpu profile (the 50,000 less validation)
        "5,000": cpu.val_size,
        "10,000": 10_000,  # the whole test set (cpu.test_size None)
        "3": 3,  # the JPEG copy runs about 3 points below the official set (shared/ data notes)
        "0": 0,  # seed
        "1.0": cpu.width,
        "0.25": quick.width,
        "95": 95,  # the interval
        "1": 1,  # batch 1
    }
    assert cpu.test_size is None and facts["45,000"] == 45_000
    return set(facts) | _in_process_ratios()


def test_results_prose_quotes_only_table_numbers_and_stated_facts():
    for name in CHECKED:
        numbers = re.findall(r"(?<![\w.`-])(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)", re.sub(r"`[^`]*`", "", _prose(name)))
        stray = sorted(set(numbers) - _allowed())
        assert not stray, f"{name}'s prose quotes numbers no table gives: {stray}"


def test_the_headline_table_is_the_committed_tables():
    """The headline block of docs/results.md is what the tables give, nothing typed."""
    from compress.report.summary import front_table_markdown

    text = (REPO_ROOT / "docs" / "results.md").read_text()
    block = re.search(r"<!-- headline:start -->\n(.*?)\n<!-- headline:end -->", text, re.S).group(1)
    assert block == front_table_markdown(RESULTS)
    if not block:  # ResNet18 recomputed on the official set: no pruning and INT8 tables of it yet
        assert not (RESULTS / "resnet18" / "pruning.csv").is_file()
        return
    assert block.count("\n| ") == 4  # header rule + three models
    models, _ = read_table(RESULTS / "resnet18" / "models.csv")
    base = models[(models.model == "baseline+onnx-fp32")].iloc[0]
    assert f"| baseline | {base.top1:.2f} | {base.macs / 1e6:.0f} | {base.size_mb:.1f} | {base.latency_ms:.2f} |" in block
    assert "on cpu (" in block  # the latency names its machine


def test_the_findings_name_a_table_for_every_bullet():
    text = (REPO_ROOT / "docs" / "results.md").read_text()
    block = re.search(r"<!-- findings:start -->(.*?)<!-- findings:end -->", text, re.S).group(1)
    bullets = [line for line in block.splitlines() if line.startswith("* ")]
    assert bullets and all(re.search(r"`\w+\.csv`", b) for b in bullets)
    assert all("±" in b for b in bullets if "**Pruning**" in b or "**INT8**" in b)  # every difference with its interval


def test_the_checker_catches_a_typed_number():
    prose = _prose("README.md") + "\nFX INT8 is 48x faster.\n"
    numbers = re.findall(r"(?<![\w.`-])(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)", prose)
    assert "48" in set(numbers) - _allowed()

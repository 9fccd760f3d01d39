"""The README's Python example runs as written: on the published ResNet18 baseline when results/resnet18/models
has one, else on a tiny ResNet18 published into a temporary results folder ($COMPRESS_RESULTS) in its place;
`load_cifar10` gives a small synthetic set, so the same ten lines take seconds (a minute on the real model)."""
import re

import pytest

import compress
from conftest import publish_smoke_baseline
from compress.data import synthetic_data
from compress.files import REPO_ROOT
from compress.published import PublishedError, RESULTS_ENV, find_model


def _published_baseline() -> bool:
    """Whether the repository's results/ publishes a ResNet18 baseline (its file there, not only listed)."""
    try:
        return find_model("resnet18", root=REPO_ROOT / "results").model_file.is_file()
    except PublishedError:
        return False


def _example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- example:start -->\n```python\n(.*?)```", text, re.S)
    assert block, "README.md has no example block between its example markers"
    return block.group(1)


def test_the_readme_example_is_about_ten_lines():
    lines = [l for l in _example().splitlines() if l.strip()]
    assert 8 <= len(lines) <= 13


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    if _published_baseline():  # the real model, as a reader runs it
        monkeypatch.delenv(RESULTS_ENV, raising=False)
    else:  # a tiny stand-in until the baseline is published
        publish_smoke_baseline(tmp_path, "resnet18")
        monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    small_data = synthetic_data(512, 128, 256)
    fake = lambda *a, **k: small_data  # noqa: E731
    monkeypatch.setattr("compress.data.load_cifar10", fake)
    monkeypatch.setattr(compress, "load_cifar10", fake)  # the package keeps a verb once it was looked up
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), "README.md example", "exec"), {})
    out = capsys.readouterr().out
    top1, macs, base = re.search(r"top-1 ([0-9.]+)%, ([0-9.]+)M MACs \(from ([0-9.]+)M\)", out).groups()
    assert 0 <= float(top1) <= 100 and (tmp_path / "resnet18-4x.onnx").is_file()
    assert float(base) / float(macs) == pytest.approx(4, rel=0.1)  # printed to 0.1M


def test_load_published_says_in_one_line_what_is_missing_and_what_makes_it(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="no published resnet18 model 'baseline'") as caught:
        compress.load_published("resnet18")
    message = str(caught.value)
    assert "\n" not in message and caught.value.__cause__ is None and caught.value.__context__ is None
    assert f"python -m compress train --arch resnet18 --profile cpu --results {tmp_path}" in message


def test_the_readme_says_what_the_example_needs_and_which_command_makes_it():
    text = (REPO_ROOT / "README.md").read_text()
    after = text.split("<!-- example:start -->", 1)[1].split("<!-- example:end -->", 1)[0].split("```", 2)[2]
    assert "published ResNet18 baseline" in after
    assert "python -m compress train --arch resnet18 --profile cpu --results results" in " ".join(after.split())

"""The README's Python example runs as written. Its surroundings are made small: a tiny ResNet18 published into
a temporary results folder ($COMPRESS_RESULTS) stands in for the published baseline, and `load_cifar10` gives a
small synthetic set, so the same ten lines take seconds."""
import re

import pytest

import compress
from conftest import publish_smoke_baseline
from compress.data import synthetic_data
from compress.files import REPO_ROOT


def _example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- example:start -->\n```python\n(.*?)```", text, re.S)
    assert block, "README.md has no example block between its example markers"
    return block.group(1)


def test_the_readme_example_is_about_ten_lines():
    lines = [l for l in _example().splitlines() if l.strip()]
    assert 8 <= len(lines) <= 13


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    publish_smoke_baseline(tmp_path, "resnet18")
    results = tmp_path / "results"
    monkeypatch.setenv("COMPRESS_RESULTS", str(results))
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


def test_load_published_says_in_one_line_when_nothing_is_published(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="no published resnet18 model 'baseline'"):
        compress.load_published("resnet18")

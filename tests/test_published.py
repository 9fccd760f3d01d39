"""Published models: the manifest, the identity match on a fresh machine, `verify`, and git's size limits."""
import json
import shutil
import subprocess
import sys

import pytest
import torch

from compress import published as pub
from compress import steps
from compress.files import REPO_ROOT
from compress.verification import VerifyError, verify


def _session(cache, results, arch="vgg16_bn", **over):
    """A smoke run on the synthetic set (the data `verify` reloads by its published sizes)."""
    return steps.Session.create(arch, "smoke", source="synthetic", cache_root=cache, results_dir=results,
                                published=results, **over)


@pytest.fixture(scope="module")
def published_run(tmp_path_factory):
    """A smoke baseline and two pruning rounds, trained once and published into a results folder."""
    root = tmp_path_factory.mktemp("published")
    results, cache = root / "results", root / "cache-trained-here"
    s = _session(cache, results)
    baseline = steps.train_baseline(s)
    steps.prune_rounds(s, baseline, {"half": 0.5}, 2)
    steps.save_results(s)
    return {"results": results, "baseline": baseline, "session": s}


def test_the_manifest_lists_each_model_with_its_hash_size_key_and_rows(published_run):
    results = published_run["results"]
    manifest = pub.read_manifest("vgg16_bn", results)
    models = {e["model"]["file"]: e for e in manifest["steps"].values() if e.get("model")}
    assert set(models) == {"baseline.pt", "pruned-half.pt"}  # the intermediate round is published by its record
    assert len(manifest["steps"]) == 3
    base = models["baseline.pt"]
    path = pub.models_dir("vgg16_bn", results) / "baseline.pt"
    assert base["model"]["sha256"] == pub.file_sha256(path) and base["model"]["bytes"] == path.stat().st_size
    assert base["key"]["step"] == "baseline" and base["key"]["train"]["precision"] == "auto"
    assert {"table": "baseline.csv"} in base["rows"] and base["provenance"]["git_commit"]
    assert {"record.json", "history.csv"} <= set(base["files"])
    # loads in plain torch, no compress class pickled
    state = torch.load(path, weights_only=True)["state_dict"]
    assert state["conv1_1.weight"].dtype in (torch.float16, torch.float32)
    assert base["model"]["dtype"] == ("float16" if state["conv1_1.weight"].dtype == torch.float16 else "float32")


def test_a_fresh_machine_continues_from_the_published_steps_without_training(published_run, tmp_path, monkeypatch):
    """An empty cache, another precision `auto` resolves to: the baseline and both rounds are read, not trained,
    and the weights a later step starts from are the stored ones (same fingerprint as where they were trained)."""
    monkeypatch.setenv("COMPRESS_PRECISION", "bf16")
    monkeypatch.setattr("compress.steps.baseline.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    monkeypatch.setattr("compress.steps.pruning.fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    s = _session(tmp_path / "empty-cache", published_run["results"])
    found = s.cache.inventory({"arch": "vgg16_bn", "width": s.profile.width, "seed": 0, "data": s.data.identity()})
    assert found["baseline"] == {"cached": 0, "published": 1} and found["prune_round"]["published"] == 2
    baseline = steps.train_baseline(s)
    assert steps.cache.fingerprint(baseline) == steps.cache.fingerprint(published_run["baseline"])
    result = steps.prune_rounds(s, baseline, {"half": 0.5}, 2)
    assert result.model("half")(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    before = published_run["session"].tables["pruning"]
    assert result.rounds.test_top1.tolist() == before.test_top1.tolist()


def test_a_step_published_by_its_record_alone_is_computed_when_its_weights_are_needed(published_run, tmp_path,
                                                                                    monkeypatch):
    results = tmp_path / "results"
    shutil.copytree(published_run["results"], results)
    manifest = pub.read_manifest("vgg16_bn", results)
    for entry in manifest["steps"].values():  # the last round's model goes missing from the publication
        if entry.get("model", {}).get("file") == "pruned-half.pt":
            entry.pop("model")
    pub.write_manifest("vgg16_bn", manifest, results)
    s = _session(tmp_path / "cache", results)
    baseline = steps.train_baseline(s)
    calls = []
    real_fit = steps.pruning.fit
    monkeypatch.setattr("compress.steps.pruning.fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    result = steps.prune_rounds(s, baseline, {"half": 0.5}, 2)
    assert calls == []  # the table needs only the records
    assert result.rounds.test_top1.tolist() == published_run["session"].tables["pruning"].test_top1.tolist()
    model = result.model("half")  # its weights: computed again, from the first round's, computed again too
    assert calls == [1, 1] and model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    recomputed = result.checkpoints[("half", 2)].record()["record"]["test_top1"]
    assert recomputed == published_run["session"].tables["pruning"].test_top1.iloc[-1]  # the same training, again


def test_verify_passes_on_the_published_models_and_fails_on_a_tampered_copy(published_run, tmp_path):
    lines = []
    table = verify("vgg16_bn", root=published_run["results"], source="synthetic", out=lines.append)
    assert table.ok.all() and len(table) == 2 and lines[-1].startswith("2 of 2 published models verified")
    tampered = tmp_path / "results"
    shutil.copytree(published_run["results"], tampered)
    model = pub.models_dir("vgg16_bn", tampered) / "baseline.pt"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    lines = []
    with pytest.raises(VerifyError, match="1 of 2 published models failed"):
        verify("vgg16_bn", root=tampered, source="synthetic", out=lines.append)
    assert any(line.startswith("FAIL vgg16_bn/baseline.pt") and "sha256" in line for line in lines)


def test_verify_fails_on_a_table_row_that_disagrees_and_on_a_missing_file(published_run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(published_run["results"], results)
    table = results / "vgg16_bn" / "baseline.csv"
    text = table.read_text().splitlines()
    header = text[1].split(",")
    row = text[2].split(",")
    column = header.index("test_top1")
    row[column] = f"{float(row[column]) + 0.5:.4f}"
    table.write_text("\n".join([*text[:2], ",".join(row), *text[3:]]) + "\n")
    (pub.models_dir("vgg16_bn", results) / "pruned-half.pt").unlink()
    lines = []
    with pytest.raises(VerifyError, match="2 of 2"):
        verify("vgg16_bn", root=results, source="synthetic", out=lines.append)
    assert any("baseline.csv says" in line for line in lines) and any("missing" in line for line in lines)


def test_the_cli_verify_prints_one_error_line_and_exits_non_zero(published_run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(published_run["results"], results)
    (pub.models_dir("vgg16_bn", results) / "baseline.pt").write_bytes(b"not a model")
    run = subprocess.run([sys.executable, "-m", "compress", "verify", "--results", str(results), "--data", "synthetic"],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == ["error: 1 of 2 published models failed verification (see the lines above)"]
    assert "FAIL vgg16_bn/baseline.pt" in run.stdout and "ok   vgg16_bn/pruned-half.pt" in run.stdout


def test_a_published_model_is_not_replaced_without_a_reason(published_run, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(published_run["results"], results)
    s = _session(tmp_path / "cache", results, epochs=2)  # another recipe: another baseline, the same file name
    steps.train_baseline(s)
    steps.save_results(s)
    assert "not replaced" in capsys.readouterr().out
    path = pub.models_dir("vgg16_bn", results) / "baseline.pt"
    assert pub.file_sha256(path) == pub.file_sha256(pub.models_dir("vgg16_bn", published_run["results"]) / "baseline.pt")
    steps.save_results(s, replace_reason="the recipe changed to 2 epochs")
    entry = next(e for e in pub.read_manifest("vgg16_bn", results)["steps"].values()
                 if e.get("model", {}).get("file") == "baseline.pt")
    assert entry["key"]["train"]["epochs"] == 2 and entry["replaced"][0]["reason"] == "the recipe changed to 2 epochs"


# ----------------------------------------------------------------------------- what git may hold
def test_size_limits_catch_a_model_outside_models_a_large_file_and_a_large_total():
    ok = {"results/resnet18/models/baseline.pt": 22_000_000, "results/vgg16/models/baseline.pt": 29_000_000}
    assert pub.limit_violations(ok) == []
    assert "outside" in pub.limit_violations({**ok, "data/model.pt": 1000})[0]
    assert "outside" in pub.limit_violations({**ok, "results/resnet18/models/old/x.pt": 1000})[0]
    resume_points = {f"results/vgg16/models/resume/baseline-{i}.pt": 45_000_000 for i in range(5)}
    assert pub.limit_violations({**ok, **resume_points}) == []  # resume points are not published models
    assert "over 50 MB" in pub.limit_violations({"results/vgg16/models/resume/big.pt": 51_000_000})[0]
    assert "over 50 MB" in pub.limit_violations({"results/vgg16/models/big.pt": 51_000_000})[0]
    many = {f"results/vgg16/models/m{i}.pt": 45_000_000 for i in range(5)}
    assert any("200 MB" in v for v in pub.limit_violations(many))


def test_the_repository_holds_model_files_only_within_the_limits():
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=REPO_ROOT, check=True).stdout
    files = [f for f in tracked.decode().split("\0") if f and pub.is_model_file(f)]
    sizes = {f: (REPO_ROOT / f).stat().st_size for f in files if (REPO_ROOT / f).exists()}
    assert pub.limit_violations(sizes) == []


def test_every_published_manifest_in_the_repository_matches_its_files():
    for arch in pub.published_archs():
        for entry in pub.entries(arch):
            if entry.record.get("model"):
                pub.check_file(entry)  # size and sha256
            assert json.loads(json.dumps(entry.record["key"]))["arch"] == arch


def test_a_run_writing_the_committed_results_publishes_each_step_as_it_finishes(tmp_path, monkeypatch):
    """A session cut off before its notebook's end still leaves every finished step published."""
    monkeypatch.setattr("compress.steps.session.REPO_ROOT", tmp_path)
    s = steps.Session.create("vgg16_bn", "smoke", source="synthetic", cache_root=tmp_path / "cache",
                             results_dir=tmp_path / "results", published=tmp_path / "results")
    assert s.publish_each
    steps.train_baseline(s)  # no save_results: the run "dies" here
    manifest = pub.read_manifest("vgg16_bn", tmp_path / "results")
    (entry,) = manifest["steps"].values()
    assert entry["model"]["file"] == "baseline.pt" and (pub.models_dir("vgg16_bn", tmp_path / "results") / "baseline.pt").is_file()
    assert not steps.Session.create("vgg16_bn", "smoke", source="synthetic", results_dir=tmp_path / "runs").publish_each


def test_a_step_published_again_before_its_tables_keeps_the_rows_it_backs(tmp_path, monkeypatch):
    """A second run reads the published step back and publishes it again at once (`publish_each`), before it
    writes any table: the manifest keeps the rows the first run recorded, so it is unchanged by the read."""
    monkeypatch.setattr("compress.steps.session.REPO_ROOT", tmp_path)
    results = tmp_path / "results"
    make = lambda: steps.Session.create("vgg16_bn", "smoke", source="synthetic", cache_root=tmp_path / "cache",  # noqa: E731
                                        results_dir=results, published=results)
    first = make()
    steps.train_baseline(first)
    steps.save_results(first)
    path = pub.models_dir("vgg16_bn", results) / pub.MANIFEST
    before = path.read_bytes()
    assert any(e["rows"] for e in json.loads(before)["steps"].values())
    steps.train_baseline(make())  # read back and published again; no save_results yet
    assert path.read_bytes() == before

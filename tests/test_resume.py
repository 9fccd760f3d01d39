"""Resume points: an unfinished training step committed as a small file, continued on another machine."""
import pytest
import torch

from compress import resume_point as rp
from compress import steps
from compress.cli import main
from conftest import Killed, kill_at
from compress.files import read_json, read_table
from compress.models import build_model
from compress.train import STATE_FORMAT, TrainConfig, fit, load_state, save_state


def _cfg(**kw):
    return TrainConfig(epochs=3, batch_size=64, lr=0.05, seed=0, progress=False, precision="fp32", **kw)


def test_a_point_is_small_fp16_and_keeps_bn_statistics_in_fp32(tiny_data, tmp_path):
    model = build_model("vgg16_bn", width=0.125)
    with pytest.raises(Killed):
        fit(model, tiny_data, _cfg(), device="cpu", state_path=tmp_path / "s.pt", epoch_hook=kill_at(1))
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    point = rp.from_training_state(state, step="baseline-x", key={"arch": "vgg16_bn"}, provenance={})
    size = rp.save(point, tmp_path / "p.pt")
    assert size < 0.75 * (tmp_path / "s.pt").stat().st_size  # no momentum, half-width weights
    weights = rp.load(tmp_path / "p.pt", "baseline-x")["model"]
    convs = [k for k, v in weights.items() if v.ndim == 4]
    assert convs and all(weights[k].dtype == torch.float16 for k in convs)
    bn = [k for k in weights if k.endswith("running_var")]
    assert bn and all(weights[k].dtype == torch.float32 for k in bn)
    assert all(weights[k].dtype == torch.int64 for k in weights if k.endswith("num_batches_tracked"))
    with pytest.raises(rp.ResumePointError, match="continues baseline-x, not baseline-y"):
        rp.load(tmp_path / "p.pt", "baseline-y")


def test_training_continues_from_a_point_at_its_epoch_in_another_precision(tiny_data, tmp_path):
    """Stopped after epoch 1 of 3 in one precision; the point continues in another, for the two epochs left, and
    says where it came from. Its first epoch is the stopped run's own."""
    torch.manual_seed(0)
    model = build_model("vgg16_bn", width=0.125)
    with pytest.raises(Killed):
        fit(model, tiny_data, _cfg(), device="cpu", state_path=tmp_path / "a.pt", epoch_hook=kill_at(1))
    state = torch.load(tmp_path / "a.pt", weights_only=True)
    state["identity"] = {**state["identity"], "precision": "bf16"}  # as a bf16 machine would have saved it
    point = rp.from_training_state(state, step="baseline-x", key={}, provenance={"git_commit": "abc"})
    resumed = rp.to_training_state(point, state_format=STATE_FORMAT, source="results/x/models/resume/baseline-x.pt")
    save_state(tmp_path / "b.pt", resumed)
    # a full state of another precision is refused; one made from a point is accepted
    assert load_state(tmp_path / "a.pt", {**state["identity"]}) is None
    assert load_state(tmp_path / "b.pt", {**state["identity"], "precision": "fp32"}) is not None
    fresh = build_model("vgg16_bn", width=0.125)
    result = fit(fresh, tiny_data, _cfg(), device="cpu", state_path=tmp_path / "b.pt")
    assert result.history.epoch.tolist() == [1, 2, 3]
    assert result.history.train_loss.iloc[0] == state["history"][0]["train_loss"]
    assert [r["epoch"] for r in result.resumed_from] == [1]
    assert result.resumed_from[0]["resume_point"].endswith("baseline-x.pt") and "momentum restarted" in result.resumed_from[0]["mode"]
    # the schedule went on where it stopped (the same learning rates as an uninterrupted run), and it trained
    whole = fit(build_model("vgg16_bn", width=0.125), tiny_data, _cfg(), device="cpu")
    assert result.history.lr.tolist() == pytest.approx(whole.history.lr.tolist())
    moved = [not torch.equal(v.float(), point["model"][k].float()) for k, v in fresh.state_dict().items() if v.ndim == 4]
    assert all(moved)


def test_a_step_continues_on_another_machine_from_its_committed_point(tmp_path, monkeypatch, capsys):
    """Machine A trains a baseline for one epoch of two and stops; `publish` writes its resume point into the
    results; machine B (an empty cache, the same results) continues from epoch 1, its provenance says so, and
    publishing the finished step deletes the point."""
    results = tmp_path / "results"
    real_fit = steps.baseline.fit

    def session(cache):
        return steps.Session.create("vgg16_bn", "smoke", source="synthetic", cache_root=cache,
                                    results_dir=results, published=results, epochs=2)

    monkeypatch.setattr(steps.baseline, "fit", lambda *a, **k: real_fit(*a, **k, epoch_hook=kill_at(1)))
    with pytest.raises(Killed):
        steps.train_baseline(session(tmp_path / "machine-a"))
    monkeypatch.setattr(steps.baseline, "fit", real_fit)
    assert main(["publish", "--cache", str(tmp_path / "machine-a"), "--results", str(results)]) == 0
    points = list((results / "vgg16_bn" / "models" / "resume").glob("baseline-*.pt"))
    assert len(points) == 1 and "1 resume point(s) written" in capsys.readouterr().out

    b = session(tmp_path / "machine-b")
    steps.train_baseline(b)
    assert "continuing from the resume point" in capsys.readouterr().out
    folder = b.cache.root / points[0].stem
    record = read_json(folder / steps.RECORD)
    assert [r["epoch"] for r in record["provenance"]["resumed_from"]] == [1]
    history = read_table(folder / steps.HISTORY)[0]
    assert history.epoch.tolist() == [1, 2]
    steps.save_results(b)  # publishes the finished step: its point has done its work
    assert not points[0].exists()


def test_publish_deletes_the_point_of_a_finished_step(tmp_path):
    point = tmp_path / "results" / "resnet18" / "models" / "resume" / "baseline-0123.pt"
    point.parent.mkdir(parents=True)
    point.write_bytes(b"x")
    (tmp_path / "cache").mkdir()
    assert main(["publish", "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results")]) == 0
    assert point.exists()  # not published: other machines still need it
    from compress import published as pub

    pub.write_manifest("resnet18", {"format": pub.FORMAT, "arch": "resnet18", "steps": {"baseline-0123": {}}},
                       tmp_path / "results")
    assert main(["publish", "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results")]) == 0
    assert not point.exists()


def _point_at(epoch: int) -> dict:
    state = {"model": {"w": torch.ones(2)}, "epoch": epoch, "step": 10 * epoch, "scheduler": {}, "generator":
             torch.Generator().get_state(), "cpu_rng": torch.get_rng_state(), "history": [], "train_seconds": 1.0,
             "images": 1, "wall_seconds": 1.0, "commits": ["abc"], "identity": {}}
    return rp.from_training_state(state, step="baseline-0123", key={"arch": "resnet18"}, provenance={})


def test_the_further_along_of_local_state_and_point_wins(tmp_path):
    """A machine whose own state is older than the committed point continues from the point; one whose state
    is as far along keeps its own (exact); and publishing never replaces a point with an older state."""
    from compress.files import write_json
    from compress.steps.resume import export, resume_dir, restore
    from compress.train import progress_path

    results, folder = tmp_path / "results", tmp_path / "cache" / "baseline-0123"
    folder.mkdir(parents=True)
    rp.save(_point_at(5), resume_dir(results, "resnet18") / "baseline-0123.pt")
    save_state(folder / "train_state.pt", {**_point_at(2), "format": STATE_FORMAT})
    write_json(progress_path(folder / "train_state.pt"), {"epoch": 2})
    write_json(folder / "key.json", {"name": "baseline", "config": {"arch": "resnet18"}})
    out = export(tmp_path / "cache", results, out=lambda *a: None)
    assert not out["written"] and "further along" in out["skipped"][0]
    assert restore(folder, "resnet18", results)  # epoch 5 beats the local epoch 2
    assert torch.load(folder / "train_state.pt", weights_only=True)["epoch"] == 5
    write_json(progress_path(folder / "train_state.pt"), {"epoch": 5})
    assert not restore(folder, "resnet18", results)  # as far along: its own state


def test_publish_without_a_cache_is_one_line(tmp_path, capsys):
    assert main(["publish", "--cache", str(tmp_path / "nope"), "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no step cache at")

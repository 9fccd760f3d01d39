"""`reproduce --plan`: what is published or cached is counted, not estimated, and a busy machine's slow
measurement does not blow up the estimate."""
import pytest

from compress import steps
from conftest import publish_smoke_baseline
from compress.files import write_json
from compress.reproduce import baseline_progress, measure_speed, print_plan
from compress.steps.pipeline import Speed
from compress.train import progress_path


def test_the_plan_counts_the_baseline_epochs_already_saved(tmp_path):
    s = steps.Session.create("vgg16", "smoke", source="synthetic", cache_root=tmp_path, published=tmp_path / "none")
    assert baseline_progress(s) == 0.0
    folder = steps.baseline_folder(s)
    folder.mkdir(parents=True)
    write_json(progress_path(folder / steps.STATE), {"seconds": 60.0, "epoch": 8, "epochs": 18})
    assert baseline_progress(s) == pytest.approx(8 / 18)
    other = steps.Session.create("vgg16", "smoke", source="synthetic", seed=1, cache_root=tmp_path,
                                 published=tmp_path / "none")
    assert baseline_progress(other) == 0.0  # another seed: another baseline


def test_a_fresh_clone_plans_the_published_baseline_as_published(tmp_path, monkeypatch, capsys):
    s = publish_smoke_baseline(tmp_path, "vgg16_bn")
    results = tmp_path / "results"
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "empty"))  # a fresh clone: nothing cached
    monkeypatch.setenv("COMPRESS_RESULTS", str(results))
    capsys.readouterr()
    totals = print_plan(s.profile, ["vgg16_bn"], s.data, 0, s.device)
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.strip().startswith("baseline"))
    assert "1 published of 1 steps" in line and line.rstrip().endswith("0 s")
    assert "importance   1 steps to compute" in out and totals["vgg16_bn"] > 0


def test_a_baseline_trained_here_gives_the_plan_its_training_speed(tmp_path, monkeypatch):
    """The speed of a whole training on this machine (its record) beats a probe of a few batches; another
    machine's, width's or precision's record is not this one's."""
    import json

    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    from compress import reproduce
    from compress.device import resolve_precision
    from compress.profiles import get_profile
    from compress.provenance import device_name

    p, cpu = get_profile("smoke"), reproduce.torch.device("cpu")
    precision = resolve_precision(p.train_config("vgg16").precision, cpu)
    monkeypatch.setattr(reproduce, "_timed_steps", lambda *a, **k: Speed(300.0, 400.0))
    assert measure_speed("vgg16", p, cpu) == Speed(300.0, 400.0)  # nothing trained here yet: the probe
    for name, device, width, ips in (("baseline-a", device_name(cpu), p.width, 111.0),
                                     ("baseline-b", "another machine", p.width, 50.0),
                                     ("baseline-c", device_name(cpu), 1.0, 20.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "done.json").write_text(json.dumps(
            {"config": {"arch": "vgg16", "width": width}, "finished": 1.0,
             "provenance": {"device": device, "precision": precision}}))
        (tmp_path / name / "record.json").write_text(json.dumps({"record": {"train_images_per_second": ips}}))
    assert measure_speed("vgg16", p, cpu) == Speed(111.0, 400.0)


def test_the_plan_keeps_the_fastest_speed_seen_on_this_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    from compress import reproduce
    from compress.profiles import get_profile

    p = get_profile("smoke")
    monkeypatch.setattr(reproduce, "_timed_steps", lambda *a, **k: Speed(100.0, 400.0))
    assert measure_speed("vgg16", p, reproduce.torch.device("cpu")) == Speed(100.0, 400.0)
    monkeypatch.setattr(reproduce, "_timed_steps", lambda *a, **k: Speed(6.0, 20.0))  # a test run beside it
    assert measure_speed("vgg16", p, reproduce.torch.device("cpu")) == Speed(100.0, 400.0)
    monkeypatch.setattr(reproduce, "_timed_steps", lambda *a, **k: Speed(150.0, 300.0))
    assert measure_speed("vgg16", p, reproduce.torch.device("cpu")) == Speed(150.0, 400.0)


def test_recompute_names_a_stage_and_the_cache_then_ignores_its_publications(tmp_path, monkeypatch, capsys):
    from compress.reproduce import recompute_names

    assert recompute_names(["baseline", "budget"]) == ["baseline", "budget_round", "budget_scratch"]
    with pytest.raises(ValueError, match="not a stage"):
        recompute_names(["everything"])
    publish_smoke_baseline(tmp_path, "vgg16_bn")
    results = tmp_path / "results"
    fresh = steps.Session.create("vgg16_bn", "smoke", source="synthetic", cache_root=tmp_path / "fresh", published=results)
    key = steps.baseline_key(fresh)[1]
    assert fresh.cache.status("baseline", key) == "published"
    monkeypatch.setenv("COMPRESS_RECOMPUTE", "baseline")
    assert fresh.cache.status("baseline", key) is None

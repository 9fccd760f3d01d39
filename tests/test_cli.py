import json

from compress.__main__ import main
from compress.checkpoint import load_checkpoint


def test_train_command_writes_checkpoint_and_results(tmp_path, monkeypatch):
    monkeypatch.setattr("compress.data.load_arrays", _synthetic)
    main(["train", "--arch", "vgg16_bn", "--profile", "smoke", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "baseline.json").read_text())
    prov = result["provenance"]
    assert prov["data_source"] == "synthetic" and prov["seed"] == 0 and prov["git_commit"]
    assert prov["config"]["arch"] == "vgg16_bn" and "torch" in prov["versions"] and prov["device"].startswith("cpu")
    assert 0 <= result["record"]["test_top1"] <= 100 and result["record"]["params"] > 0
    model, _ = load_checkpoint(tmp_path / "baseline.pt", "vgg16_bn")
    assert model.conv1_1.out_channels == 8


def _synthetic(source=None, cache_dir=None):
    from compress.data import synthetic_arrays

    return synthetic_arrays(1024, 512)

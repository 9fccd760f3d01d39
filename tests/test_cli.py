"""The command line through its entry point: outputs feed `figures`, and every bad input is one line."""
import io
import tarfile

import pytest
import torch

from compress.checkpoint import save_checkpoint
from compress.cli import main
from compress.models import build_model
from compress.files import read_table


@pytest.fixture
def synthetic(monkeypatch):
    from compress.data import synthetic_arrays

    monkeypatch.setattr("compress.data.load_arrays", lambda source=None, cache_dir=None: synthetic_arrays(512, 256))


@pytest.fixture
def ckpt(tmp_path):
    """Smoke-width checkpoints of two architectures."""
    torch.manual_seed(0)
    return {arch: save_checkpoint(build_model(arch, width=0.125), tmp_path / f"{arch}.pt", arch, 0.125)
            for arch in ("resnet18", "vgg16_bn")}


def _fails(capsys, argv, match, code=None):
    """The command exits non-zero with exactly one `error: ...` line on stderr and no traceback."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc != 0 and (code is None or rc == code), (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    return lines[0]


SMOKE = ["--profile", "smoke", "--device", "cpu"]


def test_cli_outputs_feed_the_figures(tmp_path, synthetic, capsys):
    results = tmp_path / "results"
    common = ["--arch", "vgg16_bn", *SMOKE, "--results", str(results)]
    assert main(["train", *common, "--export", str(tmp_path / "b.pt")]) == 0
    assert main(["sensitivity", *common, "--ratios", "0,0.5"]) == 0
    assert main(["prune", *common, "--configs", "sensitivity,uniform", "--rounds", "1", "--no-distill"]) == 0
    folder = results / "vgg16_bn"
    scan, prov = read_table(folder / "sensitivity.csv")
    assert len(scan) == 13 * 2 and prov["data_source"] == "synthetic"
    rounds, _ = read_table(folder / "pruning.csv")
    assert set(rounds.config) == {"sensitivity", "uniform"} and rounds.selected.any()
    assert {"baseline.csv", "history.csv", "l1.csv", "channels.csv", "models.csv", "timings.csv"} <= {p.name for p in folder.iterdir()}
    assert (tmp_path / "b.pt").is_file()
    capsys.readouterr()
    assert main(["figures", "--results", str(results), "--arch", "vgg16_bn"]) == 0
    drawn = {p.name for p in (tmp_path / "assets").iterdir()}
    assert {"vgg16_bn_training.png", "vgg16_bn_sensitivity.png", "vgg16_bn_pruning.png", "vgg16_bn_channels.png"} <= drawn


@pytest.mark.parametrize("ratios,match", [
    ("1.5", "ratio 1.5 is outside [0, 1)"),
    ("-0.1", "ratio -0.1 is outside [0, 1)"),
    ('{"layer9.conv1": 0.5}', "unknown conv layer(s) ['layer9.conv1']"),
    ("[0.5, 0.5]", "resnet18 takes 8 per-block ratios"),
])
def test_prune_refuses_bad_ratios_before_any_work(ratios, match, ckpt, synthetic, tmp_path, capsys):
    _fails(capsys, ["prune", "--arch", "resnet18", *SMOKE, "--checkpoint", str(ckpt["resnet18"]), "--ratios", ratios,
                    "--results", str(tmp_path / "r")], match, code=1)
    assert not (tmp_path / "r").exists()  # nothing half-written
    cache = tmp_path / "steps"
    assert not cache.exists() or not any(cache.iterdir())


@pytest.mark.parametrize("argv,match", [
    (["prune", "--ratios", "abc"], "argument --ratios: expected a ratio as JSON"),
    (["quantize", "--bits", "0"], "bit widths run from 2 to 32, got 0"),
    (["quantize", "--bits", "64"], "bit widths run from 2 to 32, got 64"),
    (["prune", "--rounds", "0"], "argument --rounds: expected a whole number >= 1, got 0"),
    (["sensitivity", "--ratios", "abc"], "argument --ratios: expected comma-separated ratios"),
    (["train", "--epochs", "-2"], "argument --epochs: expected a whole number >= 1, got -2"),
    (["train", "--epochs", "0"], "argument --epochs: expected a whole number >= 1, got 0"),
    (["train", "--arch", "resnet50"], "argument --arch: invalid choice: 'resnet50'"),
    (["train", "--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
])
def test_bad_arguments_are_one_line_exit_2(argv, match, capsys):
    _fails(capsys, argv, match, code=2)


def test_wrong_architecture_checkpoint(ckpt, synthetic, capsys):
    _fails(capsys, ["prune", "--arch", "vgg16_bn", *SMOKE, "--checkpoint", str(ckpt["resnet18"]), "--ratios", "0.5"],
           "holds a 'resnet18' model, not 'vgg16_bn'")


def test_checkpoint_of_another_profile(ckpt, synthetic, capsys):
    _fails(capsys, ["quantize", "--arch", "vgg16_bn", "--profile", "quick", "--checkpoint", str(ckpt["vgg16_bn"])],
           "width-0.125 vgg16_bn model, but this run uses width 0.25")


def test_text_file_as_checkpoint(tmp_path, synthetic, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("garbage!")
    _fails(capsys, ["quantize", *SMOKE, "--checkpoint", str(bad)], f"cannot read checkpoint {bad}")


def test_train_on_an_unknown_device(capsys, synthetic):
    _fails(capsys, ["train", *SMOKE[:2], "--device", "tpu"], "device 'tpu'")


def test_prune_before_train_says_what_to_run(synthetic, capsys):
    _fails(capsys, ["prune", "--arch", "vgg16_bn", *SMOKE, "--ratios", "0.5"],
           "run `python -m compress train --arch vgg16_bn --profile smoke` first")


def _truncated_archive(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"x" * 5000
        info = tarfile.TarInfo("train/cat/0.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue()[:60])
    return path


@pytest.mark.parametrize("kind,match", [("missing", "no CIFAR-10 at"), ("empty", "no images under"),
                                        ("truncated", "cannot read archive")])
def test_bad_data_sources(kind, match, tmp_path, capsys):
    source = {"missing": tmp_path / "nope.tar.gz", "empty": tmp_path / "empty",
              "truncated": _truncated_archive(tmp_path / "cut.tar.gz")}[kind]
    if kind == "empty":
        source.mkdir()
    _fails(capsys, ["train", *SMOKE, "--data", str(source)], match)


@pytest.mark.parametrize("damage", ["truncated", "changed"])
def test_a_damaged_official_file_is_one_line(damage, tmp_path, monkeypatch, capsys):
    """The real published sums: a short data_batch_2.bin, or one of full size whose bytes differ."""
    from compress import data as D

    monkeypatch.setattr(D, "DATA_DIR", tmp_path)  # where the cache would go: it must stay empty
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name in D.BINARY_MD5:
        (folder / name).write_bytes(bytes(3073 if damage == "truncated" else D.BATCH_RECORDS * D.RECORD_BYTES))
    line = _fails(capsys, ["train", *SMOKE, "--data", str(folder)], "data_batch_1.bin has ")
    expected = "expected 30,730,000" if damage == "truncated" else f"expected {D.BINARY_MD5['data_batch_1.bin']}"
    assert expected in line and not (tmp_path / "cache").exists()


def test_offline_without_a_data_source(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.delenv("COMPRESS_DATA", raising=False)
    monkeypatch.setattr("compress.data.DATA_DIR", tmp_path)
    monkeypatch.setattr("torchvision.datasets.CIFAR10", offline)
    _fails(capsys, ["train", *SMOKE], "could not download the official CIFAR-10")


def test_figures_of_a_missing_folder(tmp_path, capsys):
    _fails(capsys, ["figures", "--results", str(tmp_path / "nonexistent")], "no results folder at")
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["figures", "--results", str(tmp_path / "empty")], "holds no tables")


def test_traceback_on_request(capsys, synthetic):
    with pytest.raises(ValueError, match="device 'tpu'"):
        main(["train", *SMOKE[:2], "--device", "tpu", "--traceback"])


def test_one_default_profile_rule(monkeypatch):
    from compress.cli import build_parser

    for argv in (["train"], ["prune"], ["reproduce"]):
        assert build_parser().parse_args(argv).profile is None  # resolved by profiles.default_profile_name


def test_train_precision_is_a_profile_override(synthetic, tmp_path):
    assert main(["train", "--arch", "vgg16_bn", *SMOKE, "--precision", "fp32", "--results", str(tmp_path)]) == 0
    history = read_table(tmp_path / "vgg16_bn" / "history.csv")[1]
    assert history["config"]["profile"]["precision"] == "fp32"


@pytest.mark.parametrize("argv, message", [
    (["train", "--seed", str(2**64)], "argument --seed: expected a whole number from 0 to 4294967295"),
    (["train", "--seed", "-1"], "argument --seed: expected a whole number from 0 to 4294967295, got -1"),
    (["train", "--results", ""], "argument --results: expected a folder, got an empty path"),
    (["prune", "--rounds", "1000"], "argument --rounds: at most 20 rounds"),
])
def test_out_of_range_options_name_themselves(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and capsys.readouterr().err.startswith(f"error: {message}")


@pytest.mark.parametrize("ratios", ["0", "{}", "[0, 0, 0, 0, 0, 0, 0, 0]", '{"layer1.0.conv1": 0}'])
def test_ratios_that_prune_nothing_are_refused(ratios, capsys):
    assert main(["prune", "--profile", "smoke", "--ratios", ratios]) == 1
    assert "prunes nothing" in capsys.readouterr().err


def test_a_pruned_checkpoint_is_no_baseline(tmp_path, capsys):
    path = tmp_path / "pruned.pt"
    save_checkpoint(build_model("resnet18", width=0.125), path, "resnet18", 0.125, meta={"stage": "pruned"})
    assert main(["sensitivity", "--profile", "smoke", "--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert "holds a pruned model (its recorded stage), but this takes a baseline checkpoint" in err


def test_sigterm_ends_with_one_line_and_143(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    env = {**__import__("os").environ, "COMPRESS_CACHE": str(tmp_path / "cache"), "COMPRESS_DATA": "synthetic"}
    proc = subprocess.Popen([sys.executable, "-m", "compress", "train", "--profile", "quick", "--arch", "vgg16",
                             "--results", str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    time.sleep(8)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.rstrip().endswith("error: terminated (SIGTERM); finished steps are cached, so the same command resumes")
    assert "Traceback" not in err


WRITERS = [["train"], ["sensitivity"], ["prune", "--ratios", "0.5"], ["prune", "--macs", "2x"], ["budget"], ["quantize"]]


@pytest.mark.parametrize("command", WRITERS, ids=lambda c: " ".join(c))
def test_results_at_a_file_is_refused_before_any_work(command, tmp_path, synthetic, capsys, monkeypatch):
    """Every command that writes tables checks its folders first: a file given as --results used to fail only
    after training (and after writing its cache entry)."""
    monkeypatch.setattr("compress.data.load_arrays", _no_data)
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    line = _fails(capsys, [*command, *SMOKE, "--results", str(afile)], f"--results {afile}: {afile} is a file", code=1)
    assert "not a folder" in line
    _fails(capsys, [*command, *SMOKE, "--results", str(afile / "deeper")], f"{afile} is a file, not a folder", code=1)
    cache = tmp_path / "steps"
    assert not cache.exists() or not any(cache.iterdir())  # nothing computed, nothing cached


def _no_data(*args, **kwargs):
    raise AssertionError("the data was loaded before the outputs were checked")


def test_an_arch_folder_that_is_a_file_and_a_cache_that_is_a_file(tmp_path, synthetic, capsys, monkeypatch):
    monkeypatch.setattr("compress.data.load_arrays", _no_data)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "vgg16").write_text("")
    _fails(capsys, ["train", "--arch", "vgg16", *SMOKE, "--results", str(tmp_path / "r")],
           f"{tmp_path / 'r' / 'vgg16'} is a file, not a folder", code=1)
    (tmp_path / "cachefile").write_text("")
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cachefile"))
    _fails(capsys, ["train", *SMOKE, "--results", str(tmp_path / "ok")], "step cache ($COMPRESS_CACHE)", code=1)


def test_export_into_a_file_or_onto_a_folder_is_refused_before_training(tmp_path, synthetic, capsys, monkeypatch):
    monkeypatch.setattr("compress.data.load_arrays", _no_data)
    (tmp_path / "afile").write_text("")
    common = ["train", *SMOKE, "--results", str(tmp_path / "r")]
    _fails(capsys, [*common, "--export", str(tmp_path / "afile" / "b.pt")], f"--export {tmp_path / 'afile' / 'b.pt'}", code=1)
    _fails(capsys, [*common, "--export", str(tmp_path)], "is a folder: name a file", code=1)


def test_figures_refuse_assets_at_a_file(tmp_path, capsys):
    (tmp_path / "results" / "resnet18").mkdir(parents=True)
    (tmp_path / "assets").write_text("")
    _fails(capsys, ["figures", "--results", str(tmp_path / "results"), "--arch", "resnet18", "--assets",
                    str(tmp_path / "assets")], f"--assets {tmp_path / 'assets'}: {tmp_path / 'assets'} is a file", code=1)


def test_reproduce_checks_its_folders_before_the_data_and_the_plan(tmp_path, monkeypatch):
    from compress.reproduce import reproduce

    monkeypatch.setattr("compress.data.load_for_profile", _no_data)
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError, match="results folder .*afile is a file, not a folder"):
        reproduce("smoke", ["vgg16"], "synthetic", results=tmp_path / "afile" / "results", assets=tmp_path / "assets")

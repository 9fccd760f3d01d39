import copy
import dataclasses

import pandas as pd
import torch
import torch_pruning as tp
from torch import nn

from compress.cli import main
from compress.checkpoint import save_checkpoint
from compress.data import synthetic_data
from compress.models import build_model
from compress.quant.compare import COLUMNS, Int8Comparison, compare_int8, pruned_int8_table
from compress.files import read_table
from compress.train import TrainConfig

from arch_pipeline import fake_measure


def trained_like(arch="resnet18"):
    torch.manual_seed(0)
    model = build_model(arch, width=0.125).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    return model


def halve_channels(model):
    model = copy.deepcopy(model)
    tp.pruner.MagnitudePruner(model, torch.randn(1, 3, 32, 32), tp.importance.MagnitudeImportance(p=1),
                              pruning_ratio=0.5, ignored_layers=[model.fc]).step()
    return model


# one saved file of each kind compare_int8 writes, timed in a real fresh process by the next test: TorchScript FP32
# and torch.ao INT8 (int8-default and qat are the same kind of file as int8-optimal), onnxruntime's QDQ INT8 (its
# FP32 .onnx: tests/test_latency.py) and OpenVINO's INT8 IR (its FP32 IR is the same kind of file, read alike)
KINDS = {("torch", "fp32"), ("torch", "int8-optimal"), ("onnxruntime", "onnx-int8"), ("openvino", "openvino-int8")}


def test_compare_int8_rows_and_columns(tmp_path, monkeypatch):
    from compress.quant import latency

    real_measure, handed = latency.measure, []

    def measure(variants, **kw):  # the other rows stood in: same kind of file, seconds per process
        handed.extend(variants)
        real = real_measure([v for v in variants if (v.runtime, v.name) in KINDS], **kw)
        return pd.concat([real, fake_measure([v for v in variants if (v.runtime, v.name) not in KINDS], **kw)],
                         ignore_index=True)

    monkeypatch.setattr("compress.quant.compare.latency.measure", measure)
    data = synthetic_data(n_train=128, n_val=32, n_test=64)
    qat = TrainConfig(epochs=1, batch_size=64, lr=0.01, warmup_epochs=0.2, progress=False)
    df = compare_int8(trained_like(), data, Int8Comparison(calib_batches=1, calib_batch_size=32, qat=qat, threads=(1,),
                                                           runs=2, warmup=1, processes=1, openvino=True), folder=tmp_path)
    assert list(df.columns) == COLUMNS
    variants = ["fp32", "int8-default", "int8-optimal", "qat", "onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8"]
    assert sorted(df.variant.unique()) == sorted(variants)
    assert set(df.threads) == {1} and len(df) == len(variants)  # thread counts: tests/test_latency.py
    assert set(df.runtime[df.variant.str.startswith("onnx")]) == {"onnxruntime"}
    assert (df[df.variant.isin(["fp32", "onnx-fp32"])].speedup == 1).all()
    int8 = df[df.variant.str.contains("int8")]
    assert (int8[int8.runtime != "openvino"].size_ratio > 2.5).all()
    assert (int8[int8.runtime == "openvino"].size_ratio > 2).all()  # the IR's graph weighs on a width-0.125 model
    assert (tmp_path / "model-int8.onnx").is_file() and (tmp_path / "model-int8-optimal.ts").is_file()
    assert set(df.runtime[df.variant.str.startswith("openvino")]) == {"openvino"}
    assert (df[df.variant == "openvino-fp32"].speedup == 1).all()
    # every variant's saved file went to the timing, and each kind of file loaded and ran in a fresh process
    assert sorted((v.runtime, v.name) for v in handed) == sorted(zip(df.runtime, df.variant))
    assert all(v.path.is_file() and v.path.parent == tmp_path for v in handed)
    real = df[[k in KINDS for k in zip(df.runtime, df.variant)]]
    assert len(real) == len(KINDS) and (real.latency_ms > 0).all()
    # every latency comes from fresh processes: the median of their medians, with their spread
    assert (df.processes == 1).all() and (df.min_ms <= df.latency_ms).all() and (df.latency_ms <= df.max_ms).all()
    assert ((df.max_ms - df.min_ms) / df.min_ms - df.spread).abs().max() < 1e-9
    # every row is paired with FP32 PyTorch on the same test images
    base = df[(df.variant == "fp32") & (df.runtime == "torch")].top1.iloc[0]
    assert ((df.top1 - base - df.paired_delta).abs() < 1e-9).all()
    assert ((df.gained - df.lost) * 100 / len(data.test) - df.paired_delta).abs().max() < 1e-9
    fp32 = df[(df.variant == "fp32") & (df.runtime == "torch")]
    assert (fp32.gained == 0).all() and (fp32.lost == 0).all() and (fp32.mcnemar_p == 1).all()


def test_pruned_and_sparse_int8_table():
    from compress.sparse import set_sparsity

    data = synthetic_data(n_train=128, n_val=32, n_test=64)
    original = trained_like()
    sparse = set_sparsity(copy.deepcopy(original), 0.8)  # torch.nn.utils.prune masks still attached
    df = pruned_int8_table(original, halve_channels(original), data, sparse=sparse, calib_batches=1, calib_batch_size=32)
    assert list(df.variant) == ["original", "pruned", "pruned+int8", "pruned+float16", "pruned+int16act-int8w",
                                "sparse", "sparse+int8"]
    row = df.set_index("variant")
    assert row.size_mb["pruned"] < row.size_mb["original"] / 2.5
    assert row.size_mb["pruned+int8"] < row.size_mb["pruned"] / 2 and row.size_mb["pruned+float16"] < row.size_mb["pruned"] / 1.5
    assert row.gzip_mb["sparse"] < row.gzip_mb["original"] / 2 and row.gzip_mb["sparse+int8"] < row.gzip_mb["sparse"] / 2
    assert row.params["sparse"] == row.params["original"]
    assert row.paired_delta["original"] == 0 and row.lost["original"] == 0  # paired with the original
    assert ((df.top1 - row.top1["original"] - df.paired_delta).abs() < 1e-9).all()


def test_quantize_command_writes_tables(tmp_path, monkeypatch):
    monkeypatch.setattr("compress.quant.compare.latency.measure", fake_measure)  # the tables, not the timing
    monkeypatch.setattr("compress.data.load_arrays", lambda source=None, cache_dir=None: __import__(
        "compress.data", fromlist=["synthetic_arrays"]).synthetic_arrays(640, 256))
    model = trained_like()
    save_checkpoint(model, tmp_path / "baseline.pt", "resnet18", 0.125)
    save_checkpoint(halve_channels(model), tmp_path / "pruned.pt", "resnet18", 0.125)
    assert main(["quantize", "--profile", "smoke", "--results", str(tmp_path), "--checkpoint", str(tmp_path / "baseline.pt"),
                 "--bits", "8", "32", "--methods", "linear", "--no-qat", "--no-onnx",
                 "--pruned", str(tmp_path / "pruned.pt")]) == 0
    fixed, prov = read_table(tmp_path / "resnet18" / "fixed_point.csv")
    assert list(fixed.bits) == [8, 32] and prov["data_source"] == "synthetic"
    int8, _ = read_table(tmp_path / "resnet18" / "int8.csv")
    assert {"fp32", "int8-default", "int8-optimal"} <= set(int8.variant)
    assert "pruned+int8" in set(read_table(tmp_path / "resnet18" / "combined.csv")[0].variant)


def test_quantize_command_without_checkpoint_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("compress.data.load_arrays", lambda source=None, cache_dir=None: __import__(
        "compress.data", fromlist=["synthetic_arrays"]).synthetic_arrays(640, 256))
    assert main(["quantize", "--profile", "smoke", "--results", str(tmp_path)]) == 1
    assert "python -m compress train" in capsys.readouterr().err


def test_a_pruned_model_int8_rows_are_paired_with_the_baseline_too(tmp_path, monkeypatch):
    from compress.train import evaluate

    monkeypatch.setattr("compress.quant.compare.latency.measure", fake_measure)  # the pairing, not the timing

    data = synthetic_data(n_train=128, n_val=32, n_test=64)
    baseline = trained_like()
    base = evaluate(baseline, data.test, predictions=True)
    quick = Int8Comparison(presets=("optimal",), onnx=False, calib_batches=1, calib_batch_size=32, threads=(1,), runs=2,
                           warmup=1, processes=1)
    df = compare_int8(halve_channels(baseline), data, quick, folder=tmp_path, baseline_pred=base["pred"])
    assert ((df.top1 - base["top1"] - df.vs_baseline_delta).abs() < 1e-9).all()
    assert df.vs_baseline_ci95.notna().all() and df.vs_baseline_p.between(0, 1).all()
    alone = compare_int8(halve_channels(baseline), data, dataclasses.replace(quick, presets=()), folder=tmp_path / "b")
    assert alone.vs_baseline_delta.isna().all()  # nothing to pair with: said as NaN, never as 0

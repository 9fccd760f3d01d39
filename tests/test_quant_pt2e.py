"""PT2E static INT8 (torchao): agreement with FP32, dynamic batch, purity, shipping, QAT, the report rows.

Inductor compiles take ~10-15 s each on a busy 2-core machine, so only `test_compiled_model_*` compiles for
real; the other tests run the converted q/dq program eagerly (`compile=False`, same graph and predictions)
or, for the report wiring, with torch.compile replaced by the identity.
"""
import dataclasses
import math
from pathlib import Path
import sys

import pandas as pd
import pytest
import torch
from torch import nn

from compress.data import calibration_batches, synthetic_data
from compress.models import build_model
from compress.quant import pt2e
from compress.quant.pt2e import (Pt2eConfig, Pt2eModule, load_pt2e, pt2e_available, quantize_pt2e,
                                 quantize_qat_pt2e, save_pt2e)
from compress.quant.compare import COLUMNS, Int8Comparison, compare_int8
from compress.train import TrainConfig, evaluate

def trained_like(arch="resnet18"):
    torch.manual_seed(0)
    model = build_model(arch, width=0.125).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # away from the all-ones init, so BN folding matters
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return model


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def ptq():
    """The default (histogram) recipe calibrated at batch sizes 32 and 17, neither the export's (2)."""
    model = trained_like()
    before = state(model)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(32, 3, 32, 32, generator=g), torch.randn(17, 3, 32, 32, generator=g)]
    result = quantize_pt2e(model, Pt2eConfig(), batches, compile=False)
    return model, before, result


def test_int8_agrees_with_fp32_at_any_batch_size(ptq):
    model, _, result = ptq
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
    out = result.model(x)
    assert out.shape == (64, 10)
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.9
    assert torch.allclose(result.model(x[:1]), out[:1], atol=1e-4)  # batch 1 too: the batch dimension is dynamic
    assert math.isnan(result.compile_s) and result.config == Pt2eConfig()


def test_input_model_untouched_and_int8_weights(ptq):
    model, before, result = ptq
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    program = result.program
    assert any(b.dtype == torch.int8 for b in program.buffers()) and not batch_norms(program)
    assert not any(p.dtype == torch.float32 and p.ndim == 4 for p in program.parameters())  # float copies dropped


def test_save_and_load_round_trip(ptq, tmp_path):
    model, _, result = ptq
    n = save_pt2e(result, tmp_path / "model.pt2")  # its size against FP32's: test_compare_int8_adds_inductor_rows
    assert n == (tmp_path / "model.pt2").stat().st_size
    loaded = load_pt2e(tmp_path / "model.pt2", compile=False)
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(loaded(x), result.model(x), atol=1e-5)


def test_compiled_model_matches_program_and_records_compile_time():
    model = trained_like()
    batches = [torch.randn(16, 3, 32, 32)]
    result = quantize_pt2e(model, Pt2eConfig("minmax"), batches)
    assert isinstance(result.model, Pt2eModule) and result.model.compiled
    assert result.compile_s > 0 and math.isfinite(result.compile_s)
    x = torch.randn(1, 3, 32, 32)
    eager = Pt2eModule(result.program, compile=False)
    out, ref = result.model(x), eager(x)
    assert out.argmax(1).item() == ref.argmax(1).item()
    assert torch.allclose(out, ref, atol=0.05 * ref.abs().max().item())
    with pytest.raises(RuntimeError, match="CPU only"):
        result.model(torch.randn(1, 3, 32, 32, device="meta"))


def batch_norms(program):
    return [n for n in program.graph.nodes if "batch_norm" in str(n.target)]


def test_qat_one_epoch_returns_working_model():
    model = trained_like()
    model.layer1[0].bn2.weight.data.zero_()  # a zero-initialised residual branch: must not give NaN
    before = state(model)
    data = synthetic_data(n_train=128, n_val=0, n_test=32)  # no validation: each eval/train switch rewrites the graph
    train = TrainConfig(epochs=1, batch_size=64, lr=0.01, warmup_epochs=0.2, progress=False)
    result = quantize_qat_pt2e(model, data, train, compile=False)
    assert len(result.fit.history) == 1 and math.isfinite(result.fit.history.train_loss.iloc[0])
    assert 0.0 <= result.test["top1"] <= 100.0 and math.isfinite(result.test["loss"])
    assert result.model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert any(b.dtype == torch.int8 for b in result.program.buffers()) and not batch_norms(result.program)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_config_validation():
    assert Pt2eConfig().name == "pt2e-int8" and Pt2eConfig("minmax", reduce_range=True).name == "pt2e-int8-minmax"
    with pytest.raises(ValueError, match="unknown PT2E preset"):
        Pt2eConfig("optimal")
    with pytest.raises(ValueError, match="reduce_range"):
        Pt2eConfig(reduce_range=1)
    with pytest.raises(ValueError, match="calibration batches"):
        quantize_pt2e(trained_like(), Pt2eConfig(), [])
    with pytest.raises(ValueError, match="freeze_observers_at"):
        quantize_qat_pt2e(trained_like(), synthetic_data(64, 16, 16), TrainConfig(epochs=1), freeze_observers_at=2)


def test_unavailable_says_why(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.10.0")
    ok, why = pt2e_available()
    assert not ok and "2.11" in why and "2.10.0" in why
    with pytest.raises(RuntimeError, match=r"PT2E INT8 is unavailable: torch 2\.10\.0 is too old"):
        quantize_pt2e(trained_like(), Pt2eConfig(), [torch.randn(2, 3, 32, 32)])
    monkeypatch.undo()

    for name in [k for k in sys.modules if k == "torchao" or k.startswith("torchao.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    ok, why = pt2e_available()
    assert not ok and "torchao is not installed" in why and "pip install torchao==" in why
    with pytest.raises(RuntimeError, match="torchao is not installed"):
        load_pt2e("missing.pt2")
    monkeypatch.undo()

    def broken():
        raise ImportError("cannot import name 'X86InductorQuantizer'")

    monkeypatch.setattr(pt2e, "_api", broken)
    ok, why = pt2e_available()
    assert not ok and "PT2E API failed to import" in why and "X86InductorQuantizer" in why


def test_export_for_the_quantizer_is_strict_where_torch_needs_it(monkeypatch):
    """torch < 2.14 matches convs only through strict export's metadata; non-strict there quantized nothing."""
    prepared = pt2e._prepare(pt2e._api(), trained_like(), torch.randn(2, 3, 32, 32), Pt2eConfig(), qat=False)
    assert sum("quantization_annotation" in n.meta for n in prepared.graph.nodes) > 20  # on the torch installed
    calls = []
    monkeypatch.setattr(torch.export, "export", lambda *a, strict=False, **k: calls.append(strict) or 1 / 0)
    for version, for_quantizer in (("2.11.0", True), ("2.14.1", True), ("2.11.0", False)):
        monkeypatch.setattr(torch, "__version__", version)
        with pytest.raises(ZeroDivisionError):
            pt2e._export(trained_like(), torch.randn(2, 3, 32, 32), for_quantizer=for_quantizer)
    assert calls == [True, False, False]


def test_a_graph_the_quantizer_leaves_unannotated_is_refused(monkeypatch):
    api = pt2e._api()
    monkeypatch.setattr(pt2e, "_quantizer", lambda api_, config, qat: api.X86InductorQuantizer())  # no config
    with pytest.raises(RuntimeError, match="annotated no operator of this ResNet.*use the FX INT8 path"):
        quantize_pt2e(trained_like(), Pt2eConfig(), [torch.randn(4, 3, 32, 32)], compile=False)


def test_compare_int8_adds_inductor_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, *a, **k: model)  # the wiring, not Inductor's speed
    timed = []

    def fake_measure(variants, *, threads, **_):  # fresh processes would compile for real: their files are checked
        timed.extend(variants)
        return pd.DataFrame([{"variant": v.name, "runtime": v.runtime, "threads": t, "latency_ms": 1.0,
                              "latency_p90_ms": 1.0, "min_ms": 1.0, "max_ms": 1.0, "spread": 0.0, "processes": 1,
                              "runs": 1, "flagged": False} for v in variants for t in threads])

    monkeypatch.setattr("compress.quant.compare.latency.measure", fake_measure)
    handed = []

    def qat_stand_in(model, data_, train, config=Pt2eConfig(), **kw):
        """PT2E QAT itself is test_qat_one_epoch_returns_working_model's (its graph rewrites cost seconds each);
        here the wiring of its row: PTQ's program in its place, its test split evaluated as QAT's result holds."""
        handed.append((train, len(data_.train)))
        res = quantize_pt2e(model, config, calibration_batches(data_.train, 1, 32))
        return dataclasses.replace(res, test=evaluate(res.model, data_.test, device="cpu", predictions=True))

    monkeypatch.setattr(pt2e, "quantize_qat_pt2e", qat_stand_in)
    data = synthetic_data(n_train=128, n_val=32, n_test=64)
    qat = TrainConfig(epochs=1, batch_size=64, lr=0.01, warmup_epochs=0.2, progress=False)
    df = compare_int8(trained_like(), data, Int8Comparison(presets=(), onnx=False, pt2e=True, qat=qat, calib_batches=1,
                                                           calib_batch_size=32, threads=(1,), runs=2, warmup=1),
                      folder=tmp_path)
    assert list(df.columns) == COLUMNS and "compile_s" in COLUMNS
    assert list(zip(df.variant, df.runtime)) == [("fp32", "torch"), ("qat", "torch"), ("fp32", "inductor"),
                                                 ("pt2e-int8", "inductor"), ("qat-pt2e", "inductor")]
    assert (tmp_path / "model-qat-pt2e.pt2").is_file() and handed == [(qat, 128)]  # the same fine-tune as `qat`
    base = df.top1.iloc[0]
    assert ((df.top1 - base - df.paired_delta).abs() < 1e-9).all()  # all paired with FP32 PyTorch
    row = df.set_index(["variant", "runtime"])
    assert math.isnan(row.compile_s["fp32", "torch"])
    assert (df[df.runtime == "inductor"].compile_s > 0).all()
    assert row.speedup["fp32", "inductor"] == 1 and row.size_ratio["pt2e-int8", "inductor"] > 1.5
    saved = (tmp_path / "model-pt2e-int8.pt2").stat().st_size
    assert row.size_mb["pt2e-int8", "inductor"] == pytest.approx(saved / 1e6)
    assert (tmp_path / "model-fp32.pt2").is_file()
    assert {(v.runtime, Path(v.path).suffix) for v in timed} == {("torch", ".ts"), ("inductor", ".pt2")}
    assert abs(row.top1["pt2e-int8", "inductor"] - row.top1["fp32", "inductor"]) <= 25

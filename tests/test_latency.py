"""compress/quant/latency.py: every latency from fresh processes, alternating, with its spread kept and flagged."""
import pytest

from compress.checkpoint import save_checkpoint
from compress.quant.latency import COLUMNS, SPREAD_LIMIT, Variant, measure
from compress.models import build_model
from compress.quant.deploy import export_onnx


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifacts")
    model = build_model("vgg16_bn", width=0.125).eval()
    save_checkpoint(model, folder / "model.pt", "vgg16_bn", 0.125, meta={"stage": "baseline"})
    export_onnx(model, folder / "model.onnx")
    return folder


def test_each_variant_and_thread_count_is_timed_in_fresh_processes(artifacts):
    variants = [Variant("tiny", "torch", artifacts / "model.pt"), Variant("tiny", "onnxruntime", artifacts / "model.onnx")]
    table = measure(variants, threads=(1, 2), processes=3, warmup=2, runs=10)
    assert list(table.columns) == COLUMNS and len(table) == 4
    assert (table.processes == 3).all() and (table.runs == 10).all()
    assert ((table.min_ms <= table.latency_ms) & (table.latency_ms <= table.max_ms)).all()
    assert (table.flagged == (table.spread > SPREAD_LIMIT)).all()
    assert set(table.threads) == {1, 2} and set(table.runtime) == {"torch", "onnxruntime"}


def test_bad_variants_are_one_line(artifacts, tmp_path):
    with pytest.raises(ValueError, match="unknown runtime 'tflite'"):
        Variant("x", "tflite", artifacts / "model.pt")
    with pytest.raises(FileNotFoundError, match="no saved model at"):
        Variant("x", "torch", tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"timing 'x' \(torch, 1 threads\) failed: .*cannot read checkpoint"):
        measure([Variant("x", "torch", broken)], threads=(1,), processes=1, warmup=0, runs=1)

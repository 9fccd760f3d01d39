import onnx
import pytest
import torch
from torch import nn

from compress.data import calibration_batches, normalize
from compress.models import build_model
from compress.quant.deploy import (export_fp32_int8, export_onnx, file_sizes_mb, onnx_evaluate, onnx_latency,
                                   onnx_predict, onnx_session, quantize_onnx)
from compress.train import evaluate


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("resnet18", width=0.125).eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            nn.init.uniform_(mod.weight, 0.5, 1.5)
            nn.init.normal_(mod.bias, 0, 0.1)
    return m


@pytest.fixture(scope="module")
def onnx_files(model, tiny_data, tmp_path_factory):
    return export_fp32_int8(model, tmp_path_factory.mktemp("onnx"), calibration_batches(tiny_data.train, 2, 64))


def test_fp32_onnx_matches_torch(model, onnx_files, tiny_data):
    x = normalize(tiny_data.test.images[:64])
    session = onnx_session(onnx_files["onnx-fp32"], threads=1)
    with torch.no_grad():
        torch.testing.assert_close(onnx_predict(session, x), model(x), atol=1e-4, rtol=1e-3)
    assert onnx_evaluate(session, tiny_data.test, batch_size=50) == pytest.approx(
        evaluate(model, tiny_data.test, device="cpu"), abs=1e-3)  # dynamic batch: 128 = 50 + 50 + 28


def test_int8_onnx_is_qdq_smaller_and_close(model, onnx_files, tiny_data):
    graph = onnx.load(str(onnx_files["onnx-int8"])).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    fp32_mb, int8_mb = file_sizes_mb(onnx_files["onnx-fp32"])[0], file_sizes_mb(onnx_files["onnx-int8"])[0]
    assert int8_mb < fp32_mb / 2.5  # a tiny model: fixed overheads keep it from 4x
    x = normalize(tiny_data.test.images)
    ref = onnx_predict(onnx_session(onnx_files["onnx-fp32"]), x)
    out = onnx_predict(onnx_session(onnx_files["onnx-int8"]), x)
    assert ((out - ref).norm() / ref.norm()).item() < 0.2
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.7


def test_latency_reports_threads_and_batch(onnx_files):
    lat = onnx_latency(onnx_session(onnx_files["onnx-int8"], threads=1), batch_size=2, warmup=1, runs=3)
    assert lat["threads"] == 1 and lat["batch_size"] == 2 and lat["runs"] == 3 and lat["median_ms"] > 0


def test_export_and_quantize_errors(model, tmp_path):
    path = export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="calibration batches"):
        quantize_onnx(path, tmp_path / "q.onnx", [])

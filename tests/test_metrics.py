import torch
import torch_pruning as tp

from compress import metrics
from compress.models import ARCHS, build_model


def test_macs_agree_with_torch_pruning_counter():
    for arch in ARCHS:
        model = build_model(arch, width=0.25)
        ops, params = tp.utils.count_ops_and_params(model, torch.randn(1, 3, 32, 32))
        macs = metrics.count_macs(model)
        assert abs(macs - ops) / ops < 0.02, (arch, macs, ops)
        assert params == metrics.count_params(model)


def test_count_macs_leaves_the_model_clean():
    model = build_model("resnet18", width=0.125)
    keys = set(model.state_dict())
    metrics.count_macs(model)
    assert set(model.state_dict()) == keys  # thop's counting buffers stayed on its copy


def test_size_and_gzip_size():
    model = build_model("vgg16", width=0.125)
    n = metrics.count_params(model)
    assert 4 * n / 1e6 <= metrics.size_mb(model) < 4 * n / 1e6 + 0.1
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    assert metrics.gzip_size_mb(model) < 0.2 * metrics.size_mb(model)  # zeros compress, dense floats do not


def test_latency_reports_median_p90_and_setup():
    lat = metrics.measure_latency(build_model("resnet18", width=0.125), threads=1, warmup=1, runs=7)
    assert lat["threads"] == 1 and lat["batch_size"] == 1 and lat["runs"] == 7 and lat["device"] == "cpu"
    assert 0 < lat["median_ms"] <= lat["p90_ms"]
    assert torch.get_num_threads() >= 1


def test_latency_stats_percentiles():
    s = metrics.latency_stats([float(i) for i in range(1, 11)])
    assert s["median_ms"] == 5.5 and s["p90_ms"] == 9.0


def test_peak_memory_on_cpu_is_computed_and_said_so():
    model = build_model("vgg16", width=0.125)
    mem = metrics.peak_memory_mb(model)
    assert mem["method"].startswith("computed") and mem["peak_memory_mb"] > metrics.size_mb(model) * 0.9


def test_conv_channels_names_every_conv():
    ch = metrics.conv_channels(build_model("vgg16_bn", width=0.25))
    assert len(ch) == 13 and ch["conv1_1"] == 16 and ch["conv5_3"] == 128

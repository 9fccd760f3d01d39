import itertools
import os
import subprocess
import sys
import time

import pytest
import torch
import torch_pruning as tp

from compress import metrics
from compress.models import ARCHS, build_model


def test_macs_count_conv_and_linear_multiply_accumulates():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1, groups=2), torch.nn.Flatten(), torch.nn.Linear(8 * 32 * 32, 10))
    expected = 32 * 32 * 8 * 3 * 9 + 32 * 32 * 8 * 4 * 9 + 8 * 32 * 32 * 10
    assert metrics.count_macs(model) == expected


def test_macs_of_the_full_width_models_are_the_published_ones():
    # CIFAR ResNet18: 0.56 GMACs; CIFAR VGG16: 0.31 GMACs (conv + linear layers, one 32x32 image)
    assert metrics.count_macs(build_model("resnet18")) == 555_422_720
    assert metrics.count_macs(build_model("vgg16")) == metrics.count_macs(build_model("vgg16_bn")) == 313_201_664


def test_macs_stay_close_to_torch_pruning_counter_which_also_counts_bn():
    for arch in ARCHS:
        model = build_model(arch, width=0.25)
        ops, params = tp.utils.count_ops_and_params(model, torch.randn(1, 3, 32, 32))
        macs = metrics.count_macs(model)
        assert 0 < ops - macs < 0.02 * ops, (arch, macs, ops)
        assert params == metrics.count_params(model)


def _flop_counter_macs(model, x):
    """torch's own count: conv and matmul FLOPs (2 per multiply-accumulate) of one forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def test_thop_conv_linear_macs_match_torch_flop_counter_on_every_model():
    """The thop count every table uses against an independent counter, on the three models, a pruned one and a
    torchvision CNN: conv + linear MACs must agree exactly."""
    import torchvision

    from compress.pruning import prune

    x = torch.zeros(1, 3, 32, 32)
    pruned = prune(build_model("resnet18", width=0.25), {"layer1.0.conv1": 0.5, "layer3.1.conv1": 0.75})
    models = [build_model(a, width=0.25) for a in ARCHS] + [pruned, torchvision.models.resnet18(num_classes=10)]
    for model in models:
        assert metrics.count_macs(model) == _flop_counter_macs(model, x), type(model).__name__


def test_thop_convention_counts_bn_too_and_unknown_conventions_are_refused():
    assert metrics.count_macs(build_model("vgg16_bn"), convention="thop") == 314_307_584  # + 2 per BN element
    assert metrics.count_macs(build_model("vgg16"), convention="thop") == 313_201_664  # no BN: the same
    with pytest.raises(ValueError, match="unknown MAC convention"):
        metrics.count_macs(build_model("vgg16", width=0.25), convention="flops")


def test_count_macs_leaves_the_model_as_it_was():
    model = build_model("resnet18", width=0.125).train()
    keys = set(model.state_dict())
    metrics.count_macs(model)
    assert set(model.state_dict()) == keys and model.training
    assert not any(m._forward_hooks for m in model.modules())


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


def test_interleaved_timing_alternates_blocks_and_counts_every_run():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = metrics.time_interleaved(fns, warmup=1, runs=7, blocks=3)
    assert {k: len(v) for k, v in times.items()} == {"a": 7, "b": 7, "c": 7}
    assert calls[:3] == ["a", "b", "c"]  # one warm-up call each
    runs = [(name, len(list(group))) for name, group in itertools.groupby(calls[3:])]
    # blocks of 3, 2, 2 timed calls after two untimed ones; the order rotates from block to block
    assert runs == [("a", 5), ("b", 5), ("c", 5), ("b", 4), ("c", 4), ("a", 4), ("c", 4), ("a", 4), ("b", 4)]


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux /proc")
def test_others_cpu_sees_another_process_and_not_its_absence():
    cpus = sum(line.startswith("cpu") and line[3].isdigit() for line in open("/proc/stat"))
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    time.sleep(0.5)  # the child is spinning
    with metrics.OthersCpu() as busy:
        time.sleep(1.0)
    spin.wait()
    assert busy.share is not None and 0 <= busy.share <= 1
    assert busy.share * cpus > 0.5  # at least half of a core: the spinning child


def test_latency_stats_percentiles():
    s = metrics.latency_stats([float(i) for i in range(1, 11)])
    assert s["median_ms"] == 5.5 and s["p90_ms"] == 9.0


def test_conv_channels_names_every_conv():
    ch = metrics.conv_channels(build_model("vgg16_bn", width=0.25))
    assert len(ch) == 13 and ch["conv1_1"] == 16 and ch["conv5_3"] == 128

import copy
import operator

import pytest
import torch
from torch import fx, nn

from compress.data import calibration_batches
from compress.models import build_model
from compress.quant.fixed_point import (METHODS, ActQuant, Affine, FixedPointConfig, activation_quantizers,
                                        fixed_point_table, fold_batchnorm, linear_fraction_bits, log_fraction_bits, observe_range,
                                        quantize_fixed_point, storage_bytes)


def trained_like(arch="resnet18", seed=0):
    """A tiny model whose BN layers look trained (no zero-init gammas, non-trivial running statistics)."""
    torch.manual_seed(seed)
    model = build_model(arch, width=0.125).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, 0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def batches(tiny_data):
    return calibration_batches(tiny_data.train, 2, 32)


@pytest.mark.parametrize("bad, match", [
    ({"param_bits": 1}, "param_bits"), ({"fwd_bits": 33}, "fwd_bits"), ({"bn_bits": 8.0}, "bn_bits"),
    ({"method": "float"}, "unknown fixed-point method"), ({"overflow_rate": 1.0}, "overflow_rate"),
])
def test_bad_settings_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        FixedPointConfig(**bad)


def test_needs_calibration_batches():
    with pytest.raises(ValueError, match="calibration batch"):
        quantize_fixed_point(trained_like(), FixedPointConfig(), []).model


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fold_bn", [True, False])
def test_32_bits_equals_float_model(batches, method, fold_bn):
    model = trained_like()
    q = quantize_fixed_point(model, FixedPointConfig(32, 32, 32, method, fold_bn=fold_bn), batches).model
    x = batches[0]  # inside the calibrated ranges (minmax and log clip beyond them by design)
    with torch.no_grad():
        torch.testing.assert_close(q(x), model(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_low_bits_differ_and_weights_lie_on_the_grid(batches, method):
    model = trained_like()
    bits = 4
    q = quantize_fixed_point(model, FixedPointConfig(bits, 8, 8, method), batches).model
    with torch.no_grad():
        assert (q(batches[0]) - model(batches[0])).abs().max() > 1e-3
    convs = [m for m in q.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    folded = [m for m in fold_batchnorm(fx.symbolic_trace(copy.deepcopy(model))).modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]  # the float weights that were rounded
    assert len(convs) == len(folded) == 21  # 20 convs (BN folded in) + fc
    for m, f in zip(convs, folded):
        w, lo, hi = m.weight.detach(), *observe_range(f.weight, method)
        assert w.unique().numel() <= 2 ** bits
        if method == "linear":  # integer codes in [-2^(b-1), 2^(b-1) - 1] times 2^-sf
            codes = w * torch.exp2(linear_fraction_bits(hi, bits))
            assert torch.equal(codes, codes.round()) and codes.min() >= -8 and codes.max() <= 7
        elif method == "log":  # zero or sign * 2^e with e a multiple of the exponent step
            e = torch.log2(w[w != 0].abs()) * torch.exp2(log_fraction_bits(lo, hi, bits))
            assert (e - e.round()).abs().max() < 1e-3
        else:  # minmax: 2^b evenly spaced levels from min to max
            codes = (w - lo) / ((hi - lo) / (2 ** bits - 1))
            assert (codes - codes.round()).abs().max() < 1e-3 and codes.min() > -1e-3 and codes.max() < 15 + 1e-3


def test_activations_inside_residual_blocks_are_quantized(batches):
    q = quantize_fixed_point(trained_like(), FixedPointConfig(param_bits=32, fwd_bits=3, bn_bits=32), batches).model
    adds = [n for n in q.graph.nodes if n.op == "call_function" and n.target is operator.add]
    assert len(adds) == 8  # one residual add per BasicBlock
    quantizers = activation_quantizers(q)
    for add in adds:  # every add feeds a quantizer, and every consumer of the add sees its output
        (user,) = add.users
        assert user.op == "call_module" and isinstance(quantizers[user.target], ActQuant)
    inner = ["layer1_0_conv1_act", "layer1_0_relu1_act", "layer1_0_conv2_act", "add_act", "layer1_0_relu2_act",
             "layer2_0_downsample_0_act", "x_act", "avgpool_act", "fc_act"]
    assert set(inner) <= set(quantizers)
    seen = {}
    hooks = [quantizers[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o)) for n in inner]
    with torch.no_grad():
        q(batches[0])
    for h in hooks:
        h.remove()
    for name in inner:  # 3-bit values: at most 8 distinct levels
        assert seen[name].unique().numel() <= 2 ** 3, name


def test_batchnorm_folded_by_default_else_rounded_to_bn_bits(batches):
    folded = quantize_fixed_point(trained_like(), FixedPointConfig(), batches).model
    assert not any(isinstance(m, (nn.BatchNorm2d, Affine)) for m in folded.modules())
    kept = quantize_fixed_point(trained_like(), FixedPointConfig(param_bits=8, fwd_bits=8, bn_bits=3, fold_bn=False), batches).model
    affines = [m for m in kept.modules() if isinstance(m, Affine)]
    assert len(affines) == 20 and not any(isinstance(m, nn.BatchNorm2d) for m in kept.modules())
    assert all(a.scale.unique().numel() <= 8 and a.shift.unique().numel() <= 8 for a in affines)


def test_leaves_model_untouched_and_plain_vgg_works(batches):
    model = trained_like("vgg16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_fixed_point(model, FixedPointConfig(4, 4, 4), batches).model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert q(batches[0]).shape == (32, 10)


def test_storage_of_8_bit_weights_is_a_quarter_of_float(batches):
    model = trained_like()
    cfg = FixedPointConfig(8, 8, 8)
    q8 = quantize_fixed_point(model, cfg, batches).model
    float_bytes = sum(p.numel() * 4 for m in q8.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters(recurse=False))
    assert 0.24 < len(storage_bytes(q8, cfg)) / float_bytes < 0.35


def test_fixed_point_table(tiny_data):
    df = fixed_point_table(trained_like("vgg16_bn"), tiny_data, bits_list=(4, 32), methods=("linear", "minmax"),
                           calib_batches=2, calib_batch_size=32, arch="vgg16_bn")
    assert list(df.columns) == ["arch", "method", "bits", "fold_bn", "overflow_rate", "split", "top1", "top5",
                                "float_top1", "top1_drop", "paired_delta", "paired_ci95", "gained", "lost",
                                "mcnemar_p"]
    assert len(df) == 4 and (df.arch == "vgg16_bn").all()
    assert abs(df[(df.method == "linear") & (df.bits == 32)].top1_drop.item()) < 1.0
    # the paired difference is the same number as the difference of accuracies, with its interval beside it
    assert (df.paired_delta + df.top1_drop).abs().max() < 1e-9
    assert (df.paired_ci95 >= 0).all() and ((df.gained - df.lost) * 100 / len(tiny_data.test)
                                            - df.paired_delta).abs().max() < 1e-9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_gpu(batches):
    model = trained_like().cuda()
    cuda_batches = [b.cuda() for b in batches]
    q = quantize_fixed_point(model, FixedPointConfig(32, 32, 32), cuda_batches).model
    torch.testing.assert_close(q(cuda_batches[0]), model(cuda_batches[0]), atol=1e-4, rtol=1e-3)

import copy

import pytest
import torch

from compress.train import TrainConfig, fit

from compress.metrics import gzip_size_mb
from compress.models import build_model
from compress.sparse import (SparsitySchedule, make_permanent, polynomial_sparsity, prunable_weights, set_sparsity, sparse_finetune,
                             sparsity, sparsity_table)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_masks_reach_the_target_and_only_grow(scope):
    model = build_model("vgg16_bn", width=0.125)
    set_sparsity(model, 0.3, scope=scope)
    first = {n: (m.weight == 0).clone() for n, m in prunable_weights(model)}
    set_sparsity(model, 0.7, scope=scope)
    assert sparsity(model) == pytest.approx(0.7, abs=1e-4)
    assert all((m.weight[first[n]] == 0).all() for n, m in prunable_weights(model))
    table = sparsity_table(model)
    if scope == "layer":
        assert table.sparsity.between(0.69, 0.71).all()
    else:
        assert table.sparsity.std() > 0.01  # a global threshold prunes layers unevenly
    make_permanent(model)
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict()) and sparsity(model) == pytest.approx(0.7, abs=1e-4)


def test_channels_last_weights_can_be_masked():
    model = build_model("resnet18", width=0.125).to(memory_format=torch.channels_last)
    set_sparsity(model, 0.5)
    assert sparsity(model) == pytest.approx(0.5, abs=1e-4)
    assert model(torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)).shape == (2, 10)


def test_polynomial_schedule_is_cubic_from_initial_to_final():
    values = [polynomial_sparsity(t, 10, 0.9) for t in range(0, 13)]
    assert values[0] == 0 and values[10] == values[12] == pytest.approx(0.9)
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert polynomial_sparsity(5, 10, 0.8) == pytest.approx(0.8 * (1 - 0.5 ** 3))


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.5", True])
def test_bad_sparsity_is_an_error(bad):
    model = build_model("vgg16", width=0.125)
    with pytest.raises(ValueError, match="sparsity"):
        set_sparsity(model, bad)
    with pytest.raises(ValueError, match="scope"):
        set_sparsity(model, 0.5, scope="row")
    assert sparsity(model) < 0.01


def test_sparse_finetune_hits_its_target_and_shrinks_the_gzip_size(tiny_data):
    model = build_model("resnet18", width=0.125)
    dense = gzip_size_mb(model)
    model, record, _ = sparse_finetune(model, tiny_data, TrainConfig(epochs=2, batch_size=64, lr=0.02, progress=False), 0.8)
    assert record["sparsity"] == pytest.approx(0.8, abs=1e-3) == sparsity(model)
    assert record["gzip_mb"] < 0.5 * dense and record["gzip_mb_dense"] == pytest.approx(dense)
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert 0 <= record["test_top1"] <= 100 and record["nonzero_weights"] > 0
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_an_interrupted_sparse_finetune_resumes_to_the_same_weights(tiny_data, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.02, precision="fp32", progress=False)
    torch.manual_seed(0)
    start = build_model("vgg16_bn", width=0.125)
    whole, *_ = sparse_finetune(copy.deepcopy(start), tiny_data, cfg, 0.7)

    class Stop(Exception):
        pass

    def stop_after_epoch_one(model, step, total):  # the run is killed during epoch 2
        if step == total // 3 + 1:
            raise Stop

    state = tmp_path / "state.pt"
    first = copy.deepcopy(start)
    set_sparsity(first, 0.0)
    with pytest.raises(Stop):
        fit(first, tiny_data, cfg, step_hook=_chain(SparsitySchedule(0.7), stop_after_epoch_one), state_path=state)
    resumed, *_ = sparse_finetune(copy.deepcopy(start), tiny_data, cfg, 0.7, state_path=state)
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def _chain(*hooks):
    def run(model, step, total):
        for h in hooks:
            h(model, step, total)
    return run

"""The peer (compress/peer.py): torch-pruning's own global pruner, as its authors' CIFAR script runs it, reaches
every budget within 1% with counts of its own, and its pruned models run; full width is left to the campaign
(hundreds of pruner steps: a minute or more per budget on a CPU)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch_pruning as tp

from compress import peer
from compress.budget import allocate
from compress.metrics import conv_channels as channels, count_macs, count_params
from compress.models import example_input
from compress.profiles import BUDGET_METHODS, PROFILES
from compress.pruning import prune_to_channels

from conftest import tiny_model


@pytest.fixture(autouse=True)
def _one_thread():
    """The pruner's steps are hundreds of small tensor operations: threads only contend on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch, factors", [("vgg16_bn", (2, 4, 8)), ("resnet18", (8,))])
def test_the_peer_reaches_each_budget_within_one_percent_and_its_models_run(arch, factors):
    """Every budget on vgg16_bn; on resnet18 (coupled residual groups) the 8x budget alone, where one channel of
    a thin layer or residual stream (8 channels in stage 1) moves the MACs past the tolerance and the landing
    passes those layers over (each factor is a run of its own from the unpruned model: 8x takes the steps 2x and
    4x take, and more)."""
    model = tiny_model(arch)
    before = copy.deepcopy(model.state_dict())
    for factor in factors:
        a = allocate(model, factor, peer.METHOD)
        assert a.method == "torch-pruning" and a.error() <= 0.01, (arch, factor, a.mac_reduction)
        assert abs(a.mac_reduction - factor) / factor <= 0.01
        pruned = prune_to_channels(copy.deepcopy(model), a.channels, criterion=peer.CRITERION)
        assert count_macs(pruned) == a.macs and count_params(pruned) == a.params
        with torch.no_grad():
            out = pruned(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        assert (a.table.channels_after >= 1).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the baseline is untouched


def test_the_peer_is_the_authors_loop_with_its_last_step_shortened():
    """A direct run of the script's loop (MetaPruner, group L2, global, 400 steps, classifier ignored, step until
    reached): the peer's counts lie between the model before the last step and after it, layer by layer, and differ
    from our own global rule's (they are the peer's, not ours)."""
    model = tiny_model("vgg16_bn")
    example = example_input(1)
    goal = count_macs(model) / 2
    work = copy.deepcopy(model)
    pruner = tp.pruner.MetaPruner(work, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  global_pruning=True, pruning_ratio=1.0, iterative_steps=400,
                                  ignored_layers=[m for m in work.modules() if isinstance(m, torch.nn.Linear)
                                                  and m.out_features == 10])
    last = channels(work)
    while count_macs(work) > goal:
        last = channels(work)
        pruner.step()
    after = channels(work)
    a = allocate(model, 2, peer.METHOD)
    assert all(after[n] <= a.channels[n] <= last[n] for n in a.channels), (last, a.channels, after)
    assert a.channels != allocate(model, 2, "global").channels


def test_the_model_before_the_last_step_is_the_same_copied_or_replayed(monkeypatch):
    """`progressive_prune` copies the model only before a step that may reach the goal, and otherwise replays the
    steps to get it back. A cost that falls off a cliff (the step that reaches the goal is not foreseen) takes
    the replay, and lands where the authors' loop, copying before every step, lands."""
    model = tiny_model("vgg16_bn")
    full = count_macs(model)
    goal = 0.8 * full
    cliff = lambda m: count_macs(m) if count_macs(m) > 0.86 * full else 0.9 * count_macs(m)  # noqa: E731
    starts, landed_from = [], []
    real_start, real_land = peer._start, peer._land
    monkeypatch.setattr(peer, "_start", lambda *a: starts.append(1) or real_start(*a))
    monkeypatch.setattr(peer, "_land", lambda before, *a: landed_from.append(before) or real_land(before, *a))
    peer.progressive_prune(model, goal, cliff)
    assert len(starts) == 2 and len(landed_from) == 1  # the run, and the replay
    work, pruner = real_start(model, example_input(1), peer.ITERATIVE_STEPS, None)
    while cliff(work) > goal:
        before = copy.deepcopy(work)
        pruner.step()
    assert channels(landed_from[0]) == channels(before) != channels(work)


def test_the_peer_takes_no_cap_and_says_when_it_cannot_get_there():
    model = tiny_model("vgg16_bn")
    with pytest.raises(ValueError, match="without a per-layer cap"):
        allocate(model, 2, peer.METHOD, max_ratio=0.5)
    with pytest.raises(ValueError, match="torch-pruning's pruner cannot reach the target"):
        peer.progressive_prune(model, 1.0, count_macs, iterative_steps=4)


def test_the_peer_is_a_budget_method_of_every_profile():
    assert peer.METHOD in BUDGET_METHODS
    assert all(peer.METHOD in p.budget_methods for p in PROFILES.values())

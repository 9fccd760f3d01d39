"""Shared fixtures: tiny synthetic data for everything, the official CIFAR-10 where it exists."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_OFFICIAL = REPO.parent / "shared" / "cifar-10-batches-bin"


# Files whose tests share a session fixture's work (`smoke_steps`, `notebook_pipeline`): one worker runs them all.
SHARED_PIPELINE = {"test_arch_pipeline.py", "test_budget_steps.py", "test_notebooks.py"}


def pytest_configure(config):
    """Under pytest-xdist (the README's `-n 2`) each worker is one of the machine's cores: one thread for torch
    and for the processes it starts. Two threads per worker on two cores spin against each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """`--dist loadgroup`: a file's tests stay on one worker (its module fixtures are computed once), and the
    files sharing the smoke pipeline's session fixtures stay together."""
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("smoke-pipeline" if name in SHARED_PIPELINE else name))


def real_data_source() -> str | None:
    """$COMPRESS_DATA if it names an existing path, else a torchvision download in data/, else the official
    binary version beside the checkout."""
    env = os.environ.get("COMPRESS_DATA")
    if env and env not in ("torchvision", "official") and Path(env).exists():
        return env
    if (REPO / "data" / "cifar-10-batches-py").is_dir():
        return "torchvision"
    return str(SHARED_OFFICIAL) if SHARED_OFFICIAL.exists() else None


@pytest.fixture(scope="session")
def real_source():
    src = real_data_source()
    if src is None:
        pytest.skip("real CIFAR-10 absent: set COMPRESS_DATA to the official binary version (such as "
                    "../shared/cifar-10-batches-bin), or download the official set into data/")
    return src


@pytest.fixture(scope="session")
def tiny_data():
    from compress.data import synthetic_data

    return synthetic_data(n_train=256, n_val=64, n_test=128, seed=0)


@pytest.fixture(autouse=True)
def _isolated_step_cache(tmp_path, monkeypatch):
    """Pipeline steps cache into a per-test folder, never into the user's data/cache, and a session's default
    results folder is per test too, never the checkout's runs/<profile>/results."""
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "steps"))
    monkeypatch.setattr("compress.steps.session.default_results_dir", lambda profile: tmp_path / "runs" / profile / "results")


def _load_guard():
    """tests/guard/checkout_writes.py, the one record of which checkout files the run's processes wrote."""
    spec = importlib.util.spec_from_file_location("checkout_writes", REPO / "tests" / "guard" / "checkout_writes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GUARD = _load_guard()


def _files() -> dict:
    """path -> mtime of every file in the watched parts of the checkout (GUARD.ROOTS)."""
    out = {}
    for root in GUARD.ROOTS:
        path = Path(root)
        for f in (path.rglob("*") if path.is_dir() else [path]):
            if f.is_file() and "__pycache__" not in f.parts:
                out[f] = f.stat().st_mtime_ns
    return out


@pytest.fixture(scope="session", autouse=True)
def _checkout_left_alone(tmp_path_factory):
    """The suite fails if a test wrote into the checkout (tests write under temporary folders only): a file whose
    mtime changed during the run AND that this process, or a Python process it started, wrote (recorded by
    tests/guard/: an audit hook here, a sitecustomize in the children). A `reproduce` running beside the suite
    writes runs/ too; its files changed, but no test wrote them, so they are not the suite's failure."""
    log = tmp_path_factory.mktemp("checkout-guard") / "written.txt"
    saved = {k: os.environ.get(k) for k in (GUARD.LOG_ENV, "PYTHONPATH")}
    os.environ[GUARD.LOG_ENV] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "guard"), *filter(None, [saved["PYTHONPATH"]])])
    GUARD.install(str(log))
    before = _files()
    yield
    GUARD.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    by_tests = [os.path.relpath(f, REPO) for f in GUARD.written_changes(before, _files(), GUARD.written(str(log)))]
    assert not by_tests, f"tests wrote into the checkout: {by_tests[:10]}"


def tiny_model(arch: str, width: float = 0.125, seed: int = 0):
    """A tiny model with random BN scales and means, so channels differ in importance and pruning changes outputs."""
    import torch
    from torch import nn

    from compress.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, width=width)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.2, 1.5)
            nn.init.uniform_(m.running_mean, -0.1, 0.1)
    return model.eval()



def publish_smoke_baseline(root, arch: str = "vgg16_bn"):
    """A smoke baseline (synthetic data) trained into `root/trained-here` and published into `root/results`: a
    published model for the tests of what reads one. Returns the session that trained it."""
    from compress import steps

    results = root / "results"
    s = steps.Session.create(arch, "smoke", source="synthetic", cache_root=root / "trained-here",
                             results_dir=results, published=results)
    steps.train_baseline(s)
    steps.save_results(s)
    return s


@pytest.fixture(scope="session")
def smoke_steps(tmp_path_factory):
    """One step cache for the smoke-profile steps on `tiny_data` that more than one test file runs alike (resnet18's
    baseline, sensitivity scan and budget sweep: tests/test_arch_pipeline.py and tests/test_budget_steps.py): each
    computed once a session, by whichever file runs first."""
    return tmp_path_factory.mktemp("smoke-steps")


def notebook_source() -> str:
    """The data the notebook tests hand their notebook: the real CIFAR-10 where it exists, else synthetic."""
    return real_data_source() or "synthetic"


@pytest.fixture(scope="session")
def notebook_pipeline(tmp_path_factory):
    """vgg16's notebook pipeline run once through `compress.steps` (tests/arch_pipeline.py), in the smoke profile
    on the data the notebook tests use, into one step cache: tests/test_arch_pipeline.py checks what it made, and
    the papermill and in-process runs of tests/test_notebooks.py find every step done in `s.cache.root` (their
    mechanics, not the steps, are what they test). Returns (session, what each cell bound)."""
    import arch_pipeline
    from compress import steps

    root = tmp_path_factory.mktemp("notebook-pipeline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("compress.quant.compare.latency.measure", arch_pipeline.fake_measure)
        s = steps.Session.create("vgg16", "smoke", source=notebook_source(), cache_root=root / "steps",
                                 results_dir=root / "results")
        return s, arch_pipeline.run(s)


class Killed(Exception):
    """A run stopped from inside, as a session's end stops it."""


def kill_at(epoch: int):
    """An `epoch_hook` that stops training before `epoch` (0-based), after the epochs before it were saved."""
    def hook(model, e, epochs):
        if e == epoch:
            raise Killed
    return hook

"""Shared fixtures: tiny synthetic data for everything, the real JPEG copy where it exists."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_JPEG = REPO.parent / "shared" / "cifar10-jpeg.tar.gz"


def real_data_source() -> str | None:
    """$COMPRESS_DATA if it names an existing path, else the shared JPEG copy beside the checkout."""
    env = os.environ.get("COMPRESS_DATA")
    if env and env not in ("torchvision", "official") and Path(env).exists():
        return env
    if (REPO / "data" / "cifar-10-batches-py").is_dir():
        return "torchvision"
    return str(SHARED_JPEG) if SHARED_JPEG.exists() else None


@pytest.fixture(scope="session")
def real_source():
    src = real_data_source()
    if src is None:
        pytest.skip("real CIFAR-10 absent: set COMPRESS_DATA to an image-folder tree or .tar.gz "
                    f"(e.g. {SHARED_JPEG}) or download the official set into data/")
    return src


@pytest.fixture(scope="session")
def tiny_data():
    from compress.data import synthetic_data

    return synthetic_data(n_train=256, n_val=64, n_test=128, seed=0)


@pytest.fixture(autouse=True)
def _isolated_step_cache(tmp_path, monkeypatch):
    """Pipeline steps cache into a per-test folder, never into the user's data/cache."""
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "steps"))


@pytest.fixture(autouse=True, scope="session")
def _quiet():
    warnings.filterwarnings("ignore", category=UserWarning, module="thop")

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compress import data as D


def _write_folder(root, n_per_class=3, classes=D.CLASSES, size=(32, 32), fmt="png"):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            d = root / "cifar" / split / c
            d.mkdir(parents=True)
            for i in range(n_per_class):
                Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(d / f"{i}.{fmt}")
    return root / "cifar"


def test_image_folder_and_tarball_give_the_same_arrays(tmp_path):
    folder = _write_folder(tmp_path)
    tar_path = tmp_path / "cifar.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(folder, arcname="cifar")
    a = D.load_arrays(folder, cache_dir=tmp_path / "c1")
    b = D.load_arrays(tar_path, cache_dir=tmp_path / "c2")
    assert a["x_train"].shape == (30, 32, 32, 3) and a["x_test"].shape == (30, 32, 32, 3)
    assert np.array_equal(a["x_train"], b["x_train"]) and np.array_equal(a["y_test"], b["y_test"])
    assert sorted(np.bincount(a["y_train"])) == [3] * 10
    assert "image folder" in a["source"]


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    folder = _write_folder(tmp_path)
    D.load_arrays(folder, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("cifar10-*.npz"))) == 1
    monkeypatch.setattr(D, "_read_image_folder", lambda p: (_ for _ in ()).throw(AssertionError("decoded twice")))
    assert D.load_arrays(folder, cache_dir=tmp_path / "c")["x_train"].shape[0] == 30


def test_corrupt_cache_is_rebuilt_not_trusted(tmp_path):
    folder = _write_folder(tmp_path)
    D.load_arrays(folder, cache_dir=tmp_path / "c")
    cache = next((tmp_path / "c").glob("cifar10-*.npz"))
    cache.write_bytes(cache.read_bytes()[:100])  # an interrupted write
    assert D.load_arrays(folder, cache_dir=tmp_path / "c")["x_train"].shape[0] == 30


def test_environment_variable_selects_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "elsewhere"))
    assert D.resolve_source() == str(tmp_path / "elsewhere")
    assert D.resolve_source("torchvision") == "torchvision"


@pytest.mark.parametrize("problem, match", [
    ("missing", "no CIFAR-10 at"),
    ("nine_classes", "needs exactly 10"),
    ("wrong_size", "not a 32x32"),
    ("unreadable", "unreadable image"),
    ("corrupt_tar", "cannot read archive"),
])
def test_bad_data_gives_a_clear_error(tmp_path, problem, match):
    if problem == "missing":
        src = tmp_path / "nope"
    elif problem == "nine_classes":
        src = _write_folder(tmp_path, classes=D.CLASSES[:9])
    elif problem == "wrong_size":
        src = _write_folder(tmp_path, size=(28, 28))
    elif problem == "unreadable":
        src = _write_folder(tmp_path)
        (src / "train" / "cat" / "0.png").write_bytes(b"not an image")
    else:
        src = tmp_path / "broken.tar.gz"
        src.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(D.DataError, match=match):
        D.load_arrays(src, cache_dir=tmp_path / "cache")


def test_offline_torchvision_download_names_the_fix(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(D.DataError, match="COMPRESS_DATA"):
        D.load_arrays("torchvision", cache_dir=tmp_path)


def test_validation_split_is_stratified_disjoint_and_seeded():
    arrays = D.synthetic_arrays(1000, 100, seed=1)
    a = D.make_data(arrays, train_size=500, val_size=200, test_size=50, seed=3)
    b = D.make_data(arrays, train_size=500, val_size=200, test_size=50, seed=3)
    assert (len(a.train), len(a.val), len(a.test)) == (500, 200, 50)
    assert torch.bincount(a.val.labels).tolist() == [20] * 10
    assert torch.equal(a.val.images, b.val.images)
    train_set = {x.numpy().tobytes() for x in a.train.images}
    assert not any(x.numpy().tobytes() in train_set for x in a.val.images)


def test_a_training_subset_is_stratified_and_keeps_validation_and_test():
    data = D.make_data(D.synthetic_arrays(1000, 100, seed=1), val_size=100, seed=0)
    sub = data.with_train_subset(300, seed=0)
    assert len(sub.train) == 300 and torch.bincount(sub.train.labels).tolist() == [30] * 10
    assert sub.val is data.val and sub.test is data.test
    train_set = {x.numpy().tobytes() for x in data.train.images}
    assert all(x.numpy().tobytes() in train_set for x in sub.train.images)
    assert data.with_train_subset(None) is data and data.with_train_subset(10**6) is data


def test_augmentation_keeps_labels_aligned_and_is_a_crop_or_flip():
    # each image is a constant colour whose value encodes its label: any crop/flip keeps that colour
    labels = torch.arange(64) % 10
    images = (labels * 20 + 10).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 32, 32).contiguous()
    split = D.Split(images, labels)
    g = torch.Generator().manual_seed(0)
    for x, y in D.Batches(split, 16, train=True, generator=g):
        raw = x * torch.tensor(D.STD).view(1, 3, 1, 1) * 255 + torch.tensor(D.MEAN).view(1, 3, 1, 1) * 255
        centre = raw[:, :, 12:20, 12:20].round()  # a crop moves content by at most 4 px: the centre survives
        assert torch.allclose(centre, (y * 20 + 10).float().view(-1, 1, 1, 1).expand_as(centre), atol=1)


def test_augment_pads_with_zeros_shifts_and_flips():
    img = torch.arange(32 * 32, dtype=torch.int64).view(1, 1, 32, 32).expand(200, 3, 32, 32).to(torch.uint8).contiguous()
    out = D.augment(img, torch.Generator().manual_seed(1))
    assert out.shape == img.shape and out.dtype == torch.uint8
    assert (out == 0).any()  # zero padding entered some crops
    assert not all(torch.equal(o, img[0]) for o in out)


def test_batches_cover_the_split_once_in_eval_mode():
    split = D.Split(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.arange(10))
    ys = torch.cat([y for _, y in D.Batches(split, 4)])
    assert ys.tolist() == list(range(10))
    assert len(D.Batches(split, 4, train=True)) == 2  # drop_last in training


def test_real_data_loads(real_source):
    data = D.load_cifar10(real_source, train_size=1000, val_size=500, test_size=500)
    assert data.train.images.shape == (1000, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert torch.bincount(data.test.labels).tolist() == [50] * 10


def test_a_relative_path_means_the_same_from_any_directory(tmp_path, monkeypatch):
    from compress.data import DataError, locate
    from compress.files import REPO_ROOT

    monkeypatch.chdir(tmp_path)  # e.g. notebooks/, where a Jupyter kernel runs
    assert locate("README.md") == REPO_ROOT / "README.md"  # not here: found from the repository root
    (tmp_path / "README.md").write_text("here")
    assert locate("README.md") == Path("README.md")  # here first
    with pytest.raises(DataError, match=r"no CIFAR-10 at nowhere.tar.gz \(looked in .* and in the repository root"):
        locate("nowhere.tar.gz")


def test_a_file_that_is_no_archive_is_one_clean_line(tmp_path):
    from compress.data import DataError, load_arrays

    bad = tmp_path / "notes.tar.gz"
    bad.write_text("not an archive")
    with pytest.raises(DataError) as e:
        load_arrays(str(bad), cache_dir=tmp_path / "cache")
    message = str(e.value)
    assert "\n" not in message and ":)" not in message and message.endswith("test/<class>/?")


def test_a_test_split_missing_a_class_is_refused_and_caches_nothing(tmp_path):
    import shutil

    folder = _write_folder(tmp_path)
    shutil.rmtree(folder / "test" / "truck")
    with pytest.raises(D.DataError, match="the test split has no images of class\\(es\\) truck"):
        D.load_arrays(folder, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npz")) if (tmp_path / "cache").exists() else True


def test_a_set_too_small_for_its_splits_leaves_no_decoded_copy(tmp_path):
    folder = _write_folder(tmp_path, n_per_class=10)  # 100 training images
    with pytest.raises(ValueError, match="val_size 5000 leaves no training images"):
        D.load_cifar10(folder, val_size=5000, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npz"))

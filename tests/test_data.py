import re
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


# ----------------------------------------------------------------------------- the official versions
SHARED_BIN = Path(__file__).resolve().parents[2] / "shared" / "cifar-10-batches-bin"


def _batches(n_per_batch=20, seed=0):
    """Six (images NHWC uint8, labels) batches, every class in each: five for training, then the test batch."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (n_per_batch, 32, 32, 3), dtype=np.uint8), np.arange(n_per_batch) % 10)
            for _ in range(6)]


def _binary_bytes(images, labels) -> bytes:
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # R, G, B planes, row-major
    return np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def _python_bytes(images, labels) -> bytes:
    import pickle

    return pickle.dumps({"batch_label": b"x", "labels": labels.tolist(),
                         "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1), "filenames": []})


def _official_forms(tmp_path, monkeypatch, n_per_batch=20):
    """The same batches written as the binary and as the python version, with the loader's published sums and
    sizes swapped for these files' own (only the checksums differ from the real set)."""
    batches = _batches(n_per_batch)
    forms = {}
    for form, names, write in (("binary", D.BINARY_MD5, _binary_bytes), ("python", D.PYTHON_MD5, _python_bytes)):
        folder = tmp_path / form
        folder.mkdir()
        sums = {}
        for name, (x, y) in zip(names, batches):
            blob = write(x, y)
            (folder / name).write_bytes(blob)
            sums[name] = __import__("hashlib").md5(blob).hexdigest()
        monkeypatch.setattr(D, f"{form.upper()}_MD5", sums)
        forms[form] = folder
    monkeypatch.setattr(D, "BATCH_RECORDS", n_per_batch)
    return batches, forms


def test_a_binary_batch_reads_back_exactly():
    (x, y), *_ = _batches(7)
    images, labels = D.read_binary_batch(_binary_bytes(x, y))
    assert images.dtype == np.uint8 and images.shape == (7, 32, 32, 3)
    assert np.array_equal(images, x) and np.array_equal(labels, y)
    with pytest.raises(D.DataError, match="whole number of 3,073-byte records"):
        D.read_binary_batch(_binary_bytes(x, y)[:-1])


def test_binary_and_python_versions_are_one_data_set(tmp_path, monkeypatch):
    batches, forms = _official_forms(tmp_path, monkeypatch)
    a = D.load_arrays(forms["binary"], cache_dir=tmp_path / "c")
    b = D.load_arrays(forms["python"], cache_dir=tmp_path / "c")
    assert np.array_equal(a["x_train"], np.concatenate([x for x, _ in batches[:5]]))
    assert np.array_equal(a["x_test"], batches[5][0]) and np.array_equal(a["y_test"], batches[5][1])
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(a[k], b[k])
    assert a["digest"] == b["digest"] == D.content_digest(a)
    da, db = (D.make_data(arr, val_size=20) for arr in (a, b))
    assert da.identity() == db.identity() and da.summary() != db.summary()  # one identity, each its own form's name
    # the identity moves with the content: one pixel changed is another data set
    changed = {**a, "x_test": a["x_test"].copy()}
    changed["x_test"][0, 0, 0, 0] ^= 1
    assert D.content_digest(changed) != a["digest"]


def test_the_check_runs_once_and_is_remembered_in_the_cache(tmp_path, monkeypatch):
    _, forms = _official_forms(tmp_path, monkeypatch)
    D.load_arrays(forms["binary"], cache_dir=tmp_path / "c")
    monkeypatch.setattr(D, "_official_files", lambda *a: (_ for _ in ()).throw(AssertionError("checked twice")))
    assert D.load_arrays(forms["binary"], cache_dir=tmp_path / "c")["x_train"].shape == (100, 32, 32, 3)


def test_the_official_archive_is_read_without_unpacking(tmp_path, monkeypatch):
    _, forms = _official_forms(tmp_path, monkeypatch)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(forms["binary"], arcname="cifar-10-batches-bin")
    a = D.load_arrays(archive, cache_dir=tmp_path / "c1")
    b = D.load_arrays(forms["binary"], cache_dir=tmp_path / "c2")
    assert a["digest"] == b["digest"] and a["source"] == "CIFAR-10 binary version"


@pytest.mark.parametrize("damage, match", [
    ("missing", "test_batch.bin is missing"),
    ("truncated", "has 3,073 bytes, expected 61,460"),
    ("changed", "expected {md5} (the published sum)"),
])
def test_a_damaged_official_file_is_named_and_nothing_is_cached(tmp_path, monkeypatch, damage, match):
    _, forms = _official_forms(tmp_path, monkeypatch)
    folder = forms["binary"]
    victim = folder / ("test_batch.bin" if damage == "missing" else "data_batch_3.bin")
    blob = victim.read_bytes()
    if damage == "missing":
        victim.unlink()
    elif damage == "truncated":
        victim.write_bytes(blob[:3073])
    else:
        victim.write_bytes(blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])
    with pytest.raises(D.DataError, match=re.escape(match.format(md5=D.BINARY_MD5["data_batch_3.bin"]))) as e:
        D.load_arrays(folder, cache_dir=tmp_path / "c")
    assert str(victim) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


@pytest.mark.skipif(not SHARED_BIN.is_dir(), reason="../shared/cifar-10-batches-bin absent")
def test_the_shared_official_set(tmp_path):
    a = D.load_arrays(SHARED_BIN, cache_dir=tmp_path)
    assert a["digest"] == D.OFFICIAL_DIGEST and a["source"] == D.OFFICIAL_NAME == "CIFAR-10 (official)"
    assert np.bincount(a["y_train"]).tolist() == [5000] * 10 and np.bincount(a["y_test"]).tolist() == [1000] * 10
    assert a["x_train"].shape == (50000, 32, 32, 3) and a["x_test"].shape == (10000, 32, 32, 3)
    b = D.load_arrays(SHARED_BIN, cache_dir=tmp_path)  # from the cache, checked once
    assert b["digest"] == a["digest"] and b["source"] == D.OFFICIAL_NAME

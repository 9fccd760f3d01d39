"""CIFAR-10 from any of its forms -> cached uint8 arrays -> augmented batches made on the device.

Sources (argument, else the `COMPRESS_DATA` environment variable, else `torchvision`):

* a folder of the official binary version (`data_batch_1.bin` ... `test_batch.bin`, e.g.
  `../shared/cifar-10-batches-bin`) or the official `cifar-10-binary.tar.gz`: each file is checked against
  its published md5 once, then read, not decoded;
* `torchvision` — the official python version, downloaded into `data/` when the machine is online (a folder
  of the python version, `cifar-10-batches-py`, is read the same way);
* `synthetic` — small learnable stand-in data (class templates plus noise), for tests and demos;
* a path to an image-folder tree (`train/<class>/*`, `test/<class>/*`, png or jpg) or a `.tar.gz` of one,
  read without unpacking (e.g. `../shared/cifar10-jpeg.tar.gz`, the JPEG re-encoding, ~3 points harder).

A data set is named by its content: `content_digest` hashes the decoded pixels and labels, so the binary and
the python version (the same images in the same order) are one data set in every step key, online or not.
The arrays are cached as one uncompressed `.npz` (written atomically), so a second load takes about a second.
Training batches are random-cropped (4-pixel zero padding), flipped and normalised on whole uint8 batches
already on the target device: no per-sample Python work and no worker processes in the hot loop.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .files import REPO_ROOT, atomic_write_bytes
from .schema import OFFICIAL_DATA_NAME

DATA_DIR = REPO_ROOT / "data"
ENV_VAR = "COMPRESS_DATA"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_EXT = (".png", ".jpg", ".jpeg")
_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/[^/]+$")
# The official binary version: 10,000 records a file, each a label byte then the R, G and B 32x32 planes.
RECORD_BYTES = 1 + 3 * 32 * 32
BINARY_MD5 = {  # as the data set's authors publish them (Krizhevsky, 2009)
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25", "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421", "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d", "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d"}
PYTHON_MD5 = {  # the python version torchvision downloads (its own list of the authors' files)
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e"}
BATCH_RECORDS = 10_000
# content_digest of the official CIFAR-10 (either version): the data every published number is computed on
OFFICIAL_DIGEST = "80387ddb9a0edf3fc4a964ee3770296169bb26a651050df20035579673099660"
OFFICIAL_NAME = OFFICIAL_DATA_NAME


class DataError(RuntimeError):
    """Missing, corrupt or mis-shaped data; the message names the path and the fix."""


# ----------------------------------------------------------------------------- containers
@dataclass
class Split:
    """Images as uint8 (N, 3, 32, 32) and int64 labels, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "Split":
        return Split(self.images.to(device, non_blocking=True), self.labels.to(device, non_blocking=True))

    def subset(self, idx) -> "Split":
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.labels.device)
        return Split(self.images[idx], self.labels[idx])


@dataclass
class CifarData:
    train: Split
    val: Split
    test: Split
    source: str  # recorded in every result: which set a number is on, for people
    digest: str = ""  # content_digest of the whole set: its identity in step keys
    classes: tuple = CLASSES

    def to(self, device) -> "CifarData":
        return CifarData(self.train.to(device), self.val.to(device), self.test.to(device), self.source, self.digest,
                         self.classes)

    @property
    def device(self) -> torch.device:
        return self.train.images.device

    def summary(self) -> str:
        return f"{self.source}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}"

    def identity(self) -> str:
        """What a step key records of the data: its content digest and split sizes, never its path or form."""
        if not self.digest:  # a CifarData made by hand: no content to name it by
            raise ValueError("this CifarData has no content digest (make it with make_data or load_cifar10)")
        return f"sha256:{self.digest[:16]}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}"

    def with_train_subset(self, size: int | None, seed: int = 0) -> "CifarData":
        """The same validation and test splits with a stratified `size`-image subset of the training split
        (None, or a size at least the split's: unchanged). For steps that need a little training data (QAT)."""
        if size is None or size >= len(self.train):
            return self
        idx = stratified_indices(self.train.labels.cpu().numpy(), size, seed)
        return CifarData(self.train.subset(idx), self.val, self.test, self.source, self.digest, self.classes)


# ----------------------------------------------------------------------------- sources
def resolve_source(source: str | os.PathLike | None = None) -> str:
    """The explicit source, else $COMPRESS_DATA, else `torchvision`."""
    return str(source or os.environ.get(ENV_VAR) or "torchvision")


def locate(src: str | os.PathLike) -> Path:
    """A file source as a path. A relative path means the same everywhere: from the current directory if it is
    there, else from the repository root, so the README's `../shared/...` works from the repository, from
    `notebooks/` (where a Jupyter kernel runs) and from any other directory."""
    path = Path(src).expanduser()
    for candidate in [path] if path.is_absolute() else [path, REPO_ROOT / path]:
        if candidate.exists():
            return candidate
    looked = "" if path.is_absolute() else f" (looked in {Path.cwd()} and in the repository root {REPO_ROOT})"
    raise DataError(f"no CIFAR-10 at {path}{looked}: point ${ENV_VAR} (or the data argument) at the official binary "
                    f"version (a folder of data_batch_1.bin ... test_batch.bin, or cifar-10-binary.tar.gz), an "
                    f"image-folder tree or .tar.gz, or use 'torchvision' for the official download")


def content_digest(arrays: dict) -> str:
    """sha256 of the decoded set: training pixels (N, 32, 32, 3 uint8, row-major), training labels (one byte
    each), then the same for the test set. The same images in the same order give the same digest, whatever
    file form they came from."""
    h = hashlib.sha256()
    for split in ("train", "test"):
        h.update(np.ascontiguousarray(arrays[f"x_{split}"], dtype=np.uint8).tobytes())
        h.update(np.asarray(arrays[f"y_{split}"]).astype(np.uint8).tobytes())
    return h.hexdigest()


def dataset_name(digest: str, fallback: str) -> str:
    """The name tables carry: `CIFAR-10 (official)` for the official content however it was read."""
    return OFFICIAL_NAME if digest == OFFICIAL_DIGEST else fallback


def _form(path: Path) -> str:
    """'binary', 'python' or 'images': which form of CIFAR-10 a folder or archive holds."""
    if path.is_dir():
        for form, names in (("binary", BINARY_MD5), ("python", PYTHON_MD5)):
            if any((path / n).exists() for n in names):
                return form
        return "images"
    if path.suffix.lower() == ".bin":
        raise DataError(f"{path} is one file of the binary version: point at the folder holding all six "
                        f"({', '.join(BINARY_MD5)})")
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # the first file decides: the official archive holds cifar-10-batches-bin/
                if member.isfile():
                    name = Path(member.name).name
                    binary = "batches-bin/" in member.name or name in BINARY_MD5 or name == "batches.meta.txt"
                    return "binary" if binary else "images"
    except (tarfile.TarError, OSError, EOFError) as e:
        reason = " ".join(str(e).split()).rstrip(":")  # tarfile's messages span lines and end in a colon
        raise DataError(f"cannot read archive {path} ({reason}); is it a complete cifar-10-binary.tar.gz, or a "
                        f".tar.gz of train/<class>/ and test/<class>/?") from e
    return "images"


def _fingerprint(path: Path, form: str) -> str:
    """The cache's name for a file source: its path and the size and mtime of what it reads."""
    names = {"binary": BINARY_MD5, "python": PYTHON_MD5}.get(form) if path.is_dir() else None
    stats = [(n, *_stat(path / n)) for n in names] if names else [("", *_stat(path))]
    return hashlib.sha256(f"{path.resolve()}|{form}|{stats}".encode()).hexdigest()[:16]


def _stat(path: Path) -> tuple:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None, None


def load_arrays(source: str | os.PathLike | None = None, cache_dir: str | Path | None = None) -> dict:
    """Raw arrays {x_train, y_train, x_test, y_test (uint8 NHWC / int64), source, digest}, from the cache if
    present. Official files are checked against their published md5 sums on the first load only: the cache
    entry exists only once they passed."""
    src = resolve_source(source)
    cache_dir = Path(cache_dir or DATA_DIR / "cache")
    if src == "synthetic":  # learnable stand-in data: runs the whole flow where no CIFAR-10 is at hand
        return synthetic_arrays(5000, 1000)
    if src in ("torchvision", "official"):
        path, form, key = DATA_DIR / "cifar-10-batches-py", "torchvision", "torchvision"
        label = "CIFAR-10 (torchvision download)"
    else:
        path = locate(src)
        form = _form(path)
        key = _fingerprint(path, form)
        label = {"binary": "CIFAR-10 binary version", "python": "CIFAR-10 python version"}.get(form) or (
            f"image folder {path.name} (JPEG CIFAR-10 copy)" if "jpeg" in path.name.lower() else f"image folder {path.name}")
    cache = cache_dir / f"cifar10-{key}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
                digest = str(z["digest"])
            return {**arrays, "digest": digest, "source": dataset_name(digest, label)}
        except Exception:  # a corrupt or older cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    read = {"torchvision": _read_torchvision, "binary": _read_binary, "python": _read_python_version}.get(form,
                                                                                                     _read_image_folder)
    arrays = read(path)
    _validate(arrays, src)
    arrays["digest"] = content_digest(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(cache, buf.getvalue())
    arrays["source"] = dataset_name(arrays["digest"], label)
    return arrays


# ----------------------------------------------------------------------------- the official versions
def _official_files(path: Path, checksums: dict):
    """(name, bytes) of each official file in a folder or an archive, in the authors' order, each checked
    against its published md5: a missing, truncated or altered file is refused in one line naming it."""
    if path.is_dir():
        blobs = {n: (path / n).read_bytes() for n in checksums if (path / n).is_file()}
    else:
        blobs = {}
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    name = Path(member.name).name
                    if member.isfile() and name in checksums:
                        blobs[name] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            reason = " ".join(str(e).split()).rstrip(":")
            raise DataError(f"cannot read archive {path} ({reason}); download cifar-10-binary.tar.gz again") from e
    for name, md5 in checksums.items():
        where = path / name if path.is_dir() else f"{path}:{name}"
        if name not in blobs:
            raise DataError(f"{where} is missing: the official set has {', '.join(checksums)}")
        blob = blobs[name]
        if name.endswith(".bin") and len(blob) != BATCH_RECORDS * RECORD_BYTES:
            raise DataError(f"{where} has {len(blob):,} bytes, expected {BATCH_RECORDS * RECORD_BYTES:,} "
                            f"(10,000 records of {RECORD_BYTES:,}): truncated or not the official file")
        got = hashlib.md5(blob).hexdigest()
        if got != md5:
            raise DataError(f"{where} has md5 {got}, expected {md5} (the published sum): the file is altered or "
                            f"corrupt; fetch the official set again")
        yield name, blob


def read_binary_batch(blob: bytes, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """One file of the binary version as (uint8 N x 32 x 32 x 3, int64 labels): a reshape, no decode."""
    if not blob or len(blob) % RECORD_BYTES:
        raise DataError(f"{name}: {len(blob):,} bytes is not a whole number of {RECORD_BYTES:,}-byte records")
    records = np.frombuffer(blob, np.uint8).reshape(-1, RECORD_BYTES)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].astype(np.int64)


def read_python_batch(blob: bytes, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """One file of the python version (a pickled dict of `data` rows in the binary's plane order and `labels`)
    as read_binary_batch gives it. Only files whose md5 matched the published sums, or the test's own, reach it."""
    import pickle

    entry = pickle.loads(blob, encoding="latin1")
    images = np.asarray(entry["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(entry.get("labels", entry.get("fine_labels")), np.int64)


def _batches_to_arrays(batches: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Five training batches then the test batch -> the arrays load_arrays returns."""
    *train, test = batches
    return {"x_train": np.concatenate([x for x, _ in train]), "y_train": np.concatenate([y for _, y in train]),
            "x_test": test[0], "y_test": test[1]}


def _read_binary(path: Path) -> dict:
    return _batches_to_arrays([read_binary_batch(b, n) for n, b in _official_files(path, BINARY_MD5)])


def _read_python_version(path: Path) -> dict:
    return _batches_to_arrays([read_python_batch(b, n) for n, b in _official_files(path, PYTHON_MD5)])


def _read_torchvision(folder: Path) -> dict:
    """The python version, downloaded by torchvision into data/ (it checks the archive's md5) unless there."""
    if not all((folder / n).is_file() for n in PYTHON_MD5):
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(folder.parent), train=True, download=True)
        except Exception as e:  # offline machines land here
            raise DataError(
                f"could not download the official CIFAR-10 into {folder.parent} ({e.__class__.__name__}: {e}). "
                f"Offline? Point ${ENV_VAR} at the binary version instead, e.g. "
                f"`export {ENV_VAR}=../shared/cifar-10-batches-bin`") from e
    return _read_python_version(folder)


def _image_files(path: Path):
    """(split, class, name, bytes) for every image file in a folder tree or a .tar.gz of one."""
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            m = _MEMBER.search(f.relative_to(path).as_posix())
            if m and f.suffix.lower() in IMAGE_EXT:
                yield m.group(1), m.group(2), str(f), f.read_bytes()
        return
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                m = _MEMBER.search(member.name)
                if member.isfile() and m and member.name.lower().endswith(IMAGE_EXT):
                    yield m.group(1), m.group(2), member.name, tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        reason = " ".join(str(e).split()).rstrip(":")  # tarfile's messages span lines and end in a colon
        raise DataError(f"cannot read archive {path} ({reason}); is it a complete .tar.gz of train/<class>/ and "
                        f"test/<class>/?") from e


def _decode(item) -> np.ndarray:
    from PIL import Image

    _, _, name, blob = item
    try:
        with Image.open(io.BytesIO(blob)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:
        reason = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "(its bytes)", " ".join(str(e).split()))
        raise DataError(f"unreadable image {name}: {reason}") from e


def _read_image_folder(path: Path) -> dict:
    items = list(_image_files(path))
    if not items:
        raise DataError(f"no images under {path}: expected train/<class>/*.jpg|png and test/<class>/*.jpg|png")
    classes = sorted({c for _, c, _, _ in items})
    if len(classes) != 10:
        raise DataError(f"{path} has {len(classes)} class folders {classes[:12]}; CIFAR-10 needs exactly 10")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        images = list(pool.map(_decode, items, chunksize=512))
    bad = next((it[2] for it, im in zip(items, images) if im.shape != (32, 32, 3)), None)
    if bad:
        raise DataError(f"{bad} is not a 32x32 RGB image; CIFAR-10 images are 32x32")
    out = {}
    for split in ("train", "test"):
        idx = [i for i, it in enumerate(items) if it[0] == split]
        if not idx:
            raise DataError(f"{path} has no {split}/ images; expected train/<class>/ and test/<class>/")
        out[f"x_{split}"] = np.stack([images[i] for i in idx])
        out[f"y_{split}"] = np.array([classes.index(items[i][1]) for i in idx], np.int64)
    return out


def _validate(arrays: dict, src: str) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise DataError(f"{src}: {split} images have shape {x.shape} {x.dtype}; expected (N, 32, 32, 3) uint8")
        if len(x) != len(y) or set(np.unique(y)) - set(range(10)):
            raise DataError(f"{src}: {split} labels do not match the images or fall outside 0..9")
        missing = sorted(set(range(10)) - set(np.unique(y).tolist()))
        if missing:  # a split without a class would score (and stratify) as if it were CIFAR-10
            raise DataError(f"{src}: the {split} split has no images of class(es) "
                            f"{', '.join(CLASSES[c] for c in missing)}; every split needs all 10")


# ----------------------------------------------------------------------------- splits
def stratified_indices(labels: np.ndarray, size: int | None, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """`size` indices with the classes as balanced as possible (None: all), deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(len(labels)), exclude) if exclude is not None else np.arange(len(labels))
    if size is None or size >= len(pool):
        return np.sort(pool)
    per_class = [rng.permutation(pool[labels[pool] == c]) for c in np.unique(labels[pool])]
    k = len(per_class)
    take = [size // k + (1 if i < size % k else 0) for i in range(k)]
    return np.sort(np.concatenate([p[:t] for p, t in zip(per_class, take)]))


def make_data(arrays: dict, *, train_size: int | None = None, val_size: int = 5000, test_size: int | None = None,
              seed: int = 0, device="cpu") -> CifarData:
    """Carve a stratified validation split from the training set, then optional stratified subsets."""
    y_train = arrays["y_train"]
    if val_size >= len(y_train):
        raise ValueError(f"val_size {val_size} leaves no training images (training set has {len(y_train)})")
    val_idx = stratified_indices(y_train, val_size, seed)
    train_idx = stratified_indices(y_train, train_size, seed + 1, exclude=val_idx)
    test_idx = stratified_indices(arrays["y_test"], test_size, seed + 2)

    def split(x, y, idx):
        return Split(torch.from_numpy(np.ascontiguousarray(x[idx].transpose(0, 3, 1, 2))), torch.from_numpy(y[idx]))

    data = CifarData(split(arrays["x_train"], y_train, train_idx), split(arrays["x_train"], y_train, val_idx),
                     split(arrays["x_test"], arrays["y_test"], test_idx), arrays["source"],
                     arrays.get("digest") or content_digest(arrays))
    return data.to(device)


def load_cifar10(source=None, *, train_size=None, val_size=5000, test_size=None, seed=0, device="cpu",
                 cache_dir=None) -> CifarData:
    """CIFAR-10 ready for training: see the module docstring for sources. A set too small for the asked
    splits is refused and leaves no decoded copy behind (nothing of it is worth keeping)."""
    cache = Path(cache_dir or DATA_DIR / "cache")
    before = set(cache.glob("*.npz")) if cache.is_dir() else set()
    arrays = load_arrays(source, cache_dir)
    try:
        return make_data(arrays, train_size=train_size, val_size=val_size, test_size=test_size, seed=seed, device=device)
    except ValueError:
        for made in (set(cache.glob("*.npz")) if cache.is_dir() else set()) - before:
            made.unlink(missing_ok=True)
        raise


def load_for_profile(profile, source=None, seed: int = 0, device="cpu") -> CifarData:
    return load_cifar10(source, train_size=profile.train_size, val_size=profile.val_size,
                        test_size=profile.test_size, seed=seed, device=device)


def synthetic_arrays(n_train: int = 512, n_test: int = 256, seed: int = 0) -> dict:
    """Learnable stand-in data for tests: each class is a smooth random template plus noise."""
    rng = np.random.default_rng(seed)
    half = rng.uniform(40, 215, size=(10, 4, 2, 3))
    templates = np.concatenate([half, half[:, :, ::-1]], axis=2)  # mirror-symmetric: a flip keeps the class
    templates = templates.repeat(8, axis=1).repeat(8, axis=2)  # 32x32 blocky class patterns

    def make(n):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = templates[y] + rng.normal(0, 40, size=(n, 32, 32, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return {**arrays, "source": "synthetic", "digest": content_digest(arrays)}


def synthetic_data(n_train: int = 512, n_val: int = 128, n_test: int = 256, seed: int = 0, device="cpu") -> CifarData:
    return make_data(synthetic_arrays(n_train + n_val, n_test, seed), val_size=n_val, seed=seed, device=device)


# ----------------------------------------------------------------------------- batches
def augment(images: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """Random crop after `pad`-pixel zero padding plus horizontal flip, for a whole uint8 batch at once."""
    n, _, h, w = images.shape
    dev = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(images.shape[1], device=dev)[None, :, None, None], rows, cols]
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def normalize(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 standardised with the CIFAR-10 channel statistics."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1) * 255
    x = (images.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class Batches:
    """Iterate a `Split` in batches on its device; training batches are shuffled and augmented.

    Each pass draws a fresh permutation and augmentation from `generator`, so runs are reproducible from a seed.
    """

    def __init__(self, split: Split, batch_size: int, *, train: bool = False, generator: torch.Generator | None = None,
                 channels_last: bool = False, drop_last: bool | None = None):
        self.split, self.batch_size, self.train = split, batch_size, train
        self.generator, self.channels_last = generator, channels_last
        self.drop_last = train if drop_last is None else drop_last
        if self.drop_last and len(split) < batch_size:
            self.drop_last = False  # tiny subsets: one short batch beats no batch at all

    def __len__(self) -> int:
        n, b = len(self.split), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n = len(self.split)
        dev = self.split.images.device
        order = torch.randperm(n, device=dev, generator=self.generator) if self.train else torch.arange(n, device=dev)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.split.images[idx]
            if self.train:
                x = augment(x, self.generator)
            yield normalize(x, self.channels_last), self.split.labels[idx]


def reiterable(batches):
    """A `Split` as it is; any other iterable of (images, labels) batches as something that can be gone through
    more than once: a DataLoader or a list as it is, a one-shot iterator (a generator) gathered into a list once."""
    if isinstance(batches, Split):
        return batches
    try:
        iterator = iter(batches)
    except TypeError:
        raise TypeError(f"expected a Split or an iterable of (images, labels) batches such as a DataLoader, "
                        f"got {type(batches).__name__}") from None
    return list(iterator) if iterator is batches else batches


def model_batches(batches, device, channels_last: bool = False):
    """(inputs, labels) on `device` from any iterable of (images, labels) batches, such as a DataLoader: uint8
    images are normalised as a `Split`'s are (CIFAR-10 statistics); float images are already the model's inputs
    (the loader's transforms normalised them) and are only moved, in channels_last memory where asked."""
    for i, batch in enumerate(batches):
        try:
            images, labels = batch
        except (TypeError, ValueError):
            raise TypeError(f"batch {i}: expected a pair (images, labels), got {type(batch).__name__}") from None
        if not (torch.is_tensor(images) and images.ndim == 4 and torch.is_tensor(labels)):
            raise TypeError(f"batch {i}: expected images as an (N, C, H, W) tensor and labels as a tensor, got "
                            f"{getattr(images, 'shape', type(images).__name__)} and {type(labels).__name__}")
        x = images.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = normalize(x, channels_last)
        elif channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, labels.to(device, non_blocking=True)


def calibration_batches(split: Split, num_batches: int, batch_size: int, seed: int = 0):
    """A fixed list of un-augmented, normalised training batches for calibrating quantizers."""
    g = torch.Generator(device=split.images.device).manual_seed(seed)
    idx = torch.randperm(len(split), device=split.images.device, generator=g)[: num_batches * batch_size]
    sub = split.subset(idx)
    return [x for x, _ in Batches(sub, batch_size, train=False)]

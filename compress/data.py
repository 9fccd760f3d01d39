"""CIFAR-10 from either source -> cached uint8 arrays -> augmented batches made on the device.

Sources (argument, else the `COMPRESS_DATA` environment variable, else `torchvision`):

* `torchvision` — the official CIFAR-10, downloaded into `data/` when the machine is online.
* `synthetic` — small learnable stand-in data (class templates plus noise), for tests and demos.
* a path to an image-folder tree (`train/<class>/*`, `test/<class>/*`, png or jpg) or a `.tar.gz` of one,
  read without unpacking (e.g. `../shared/cifar10-jpeg.tar.gz`, the JPEG re-encoding, ~3 points harder).

Images are decoded once, in parallel, and cached as one uncompressed `.npz` (written atomically), so a
second load takes about a second. Training batches are random-cropped (4-pixel zero padding), flipped
and normalised on whole uint8 batches already on the target device: no per-sample Python work and no
worker processes in the hot loop.
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

DATA_DIR = REPO_ROOT / "data"
ENV_VAR = "COMPRESS_DATA"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
IMAGE_EXT = (".png", ".jpg", ".jpeg")
_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/[^/]+$")


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
    source: str  # recorded in every result: which set a number is on
    classes: tuple = CLASSES

    def to(self, device) -> "CifarData":
        return CifarData(self.train.to(device), self.val.to(device), self.test.to(device), self.source, self.classes)

    @property
    def device(self) -> torch.device:
        return self.train.images.device

    def summary(self) -> str:
        return f"{self.source}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}"

    def with_train_subset(self, size: int | None, seed: int = 0) -> "CifarData":
        """The same validation and test splits with a stratified `size`-image subset of the training split
        (None, or a size at least the split's: unchanged). For steps that need a little training data (QAT)."""
        if size is None or size >= len(self.train):
            return self
        idx = stratified_indices(self.train.labels.cpu().numpy(), size, seed)
        return CifarData(self.train.subset(idx), self.val, self.test, self.source, self.classes)


# ----------------------------------------------------------------------------- sources
def resolve_source(source: str | os.PathLike | None = None) -> str:
    """The explicit source, else $COMPRESS_DATA, else `torchvision`."""
    return str(source or os.environ.get(ENV_VAR) or "torchvision")


def locate(src: str | os.PathLike) -> Path:
    """An image-folder source as a path. A relative path means the same everywhere: from the current directory
    if it is there, else from the repository root, so the README's `../shared/...` works from the repository,
    from `notebooks/` (where a Jupyter kernel runs) and from any other directory."""
    path = Path(src).expanduser()
    for candidate in [path] if path.is_absolute() else [path, REPO_ROOT / path]:
        if candidate.exists():
            return candidate
    looked = "" if path.is_absolute() else f" (looked in {Path.cwd()} and in the repository root {REPO_ROOT})"
    raise DataError(f"no CIFAR-10 at {path}{looked}: point ${ENV_VAR} (or the data argument) at an image-folder tree or "
                    f".tar.gz with train/<class>/ and test/<class>/, or use 'torchvision' for the official download")


def load_arrays(source: str | os.PathLike | None = None, cache_dir: str | Path | None = None) -> dict:
    """Raw arrays {x_train, y_train, x_test, y_test (uint8 NHWC / int64), source}, from the cache if present."""
    src = resolve_source(source)
    cache_dir = Path(cache_dir or DATA_DIR / "cache")
    if src == "synthetic":  # learnable stand-in data: runs the whole flow where no CIFAR-10 is at hand
        return synthetic_arrays(5000, 1000)
    if src in ("torchvision", "official"):
        key, label = "torchvision", "official CIFAR-10 (torchvision)"
    else:
        path = locate(src)
        st = path.stat()
        key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
        label = f"image folder {path.name} (JPEG CIFAR-10 copy)" if "jpeg" in path.name.lower() else f"image folder {path.name}"
    cache = cache_dir / f"cifar10-{key}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            arrays["source"] = label
            return arrays
        except Exception:  # a corrupt cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    arrays = _read_torchvision() if key == "torchvision" else _read_image_folder(path)
    _validate(arrays, src)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(cache, buf.getvalue())
    arrays["source"] = label
    return arrays


def _read_torchvision() -> dict:
    from torchvision.datasets import CIFAR10

    root = DATA_DIR
    try:
        train = CIFAR10(str(root), train=True, download=True)
        test = CIFAR10(str(root), train=False, download=True)
    except Exception as e:  # offline machines land here
        raise DataError(
            f"could not download the official CIFAR-10 into {root} ({e.__class__.__name__}: {e}). Offline? Point "
            f"${ENV_VAR} at an image-folder copy instead, e.g. `export {ENV_VAR}=../shared/cifar10-jpeg.tar.gz`") from e
    return {"x_train": np.asarray(train.data, np.uint8), "y_train": np.asarray(train.targets, np.int64),
            "x_test": np.asarray(test.data, np.uint8), "y_test": np.asarray(test.targets, np.int64)}


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
                     split(arrays["x_test"], arrays["y_test"], test_idx), arrays["source"])
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
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "source": "synthetic"}


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

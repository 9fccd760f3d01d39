"""The step cache: finished pipeline steps on disk, keyed by what decides their result, each with the
provenance of the run that computed it, and served from the published results (`compress.published`) where
a step with the same key is published there. The cache owns the paths inside a step's folder."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .. import published as pub
from ..files import _jsonable, atomic_write_text, read_json, write_json
from ..train import PROGRESS_SUFFIX

# what a step leaves in its folder
MODEL = "model.pt"  # the step's model (fp16 where that keeps its predictions: `steps/trained.py`)
STATE = "train_state.pt"  # the resumable training state while the step runs; deleted when it finishes
RECORD = "record.json"  # the step's row(s): costs, accuracies, test predictions, provenance
HISTORY = "history.csv"  # a training step's per-epoch curve
KEY = "key.json"  # the step's name and key, written when it starts: an unfinished step can be published by it


def fingerprint(model) -> str:
    """A hash of a model's weights and their names: identifies upstream weights in step cache keys."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-able configuration."""
    blob = json.dumps(config, sort_keys=True, default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class MissingStep(LookupError):
    """A step's input is not in the cache and the caller asked not to compute it (e.g. the CLI's `prune`
    before `train`): the message says which command makes it."""


def saved_seconds(folder: Path, field: str = "seconds") -> float:
    """The seconds of work that earlier, interrupted attempts saved in `folder` (their progress files);
    `field="carried"`: the part of it the last attempt actually resumed from (a discarded state carries 0)."""
    total = 0.0
    for path in sorted(folder.glob("*" + PROGRESS_SUFFIX)):
        try:
            record = read_json(path)
            total += float(record[field] if field in record else record["seconds"])
        except (OSError, ValueError, KeyError, TypeError):  # a torn file costs its seconds in the total, nothing else
            print(f"warning: ignoring unreadable progress file {path}", flush=True)
    return total


RECOMPUTE_ENV = "COMPRESS_RECOMPUTE"  # comma-separated step names computed here even where published (`reproduce --recompute`)


def recomputed_steps() -> set[str]:
    return {n.strip() for n in os.environ.get(RECOMPUTE_ENV, "").split(",") if n.strip()}


DONE = "done.json"
LOCKS = ".locks"  # the step locks' folder inside the cache root


def folder_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file a step left in `folder` (but `done.json`), by path relative to it."""
    return {f.relative_to(folder).as_posix(): pub.file_sha256(f) for f in sorted(folder.rglob("*"))
            if f.is_file() and f.name != DONE}


class StepCache:
    """Finished pipeline steps on disk, keyed by their configuration.

    A step's folder `<root>/<name>-<hash>/` holds what the step wrote plus `done.json`, written last and
    atomically with a sha256 of every other file: a folder without it (an interrupted run) is resumed or
    recomputed, never trusted, and a finished one is used only while its files are the ones it finished with
    (a damaged, swapped or truncated entry, or an unreadable `done.json`, is moved aside with one warning line
    and the step computed again). One process computes a step at a time: a second waits on the step's lock
    (`fcntl.flock`, released by the kernel if its holder dies), then finds the result. Work saved to resume
    from declares what it cost in a progress file (`progress_path`), so a step finished over several attempts
    records its whole compute time, not only its last attempt's.
    """

    def __init__(self, root: str | Path, published: str | Path | None = None):
        self.root = Path(root)
        self.published = pub.results_root(published)  # the results/ whose published steps this cache serves
        self.log: list[dict] = []  # every step asked of this cache: name, folder, cached, compute seconds
        self._manifests: dict[str, dict] = {}

    def folder(self, name: str, config: dict) -> Path:
        return self.root / f"{name}-{config_key(config)}"

    def model(self, folder: Path) -> Path:
        return Path(folder) / MODEL

    def published_entry(self, name: str, config: dict) -> pub.Entry | None:
        """The published step with exactly this key (its architecture's manifest, read once), or None."""
        arch = config.get("arch")
        if not isinstance(arch, str) or name in recomputed_steps():
            return None
        if arch not in self._manifests:
            try:
                self._manifests[arch] = pub.read_manifest(arch, self.published)["steps"]
            except pub.PublishedError as e:
                print(f"warning: {e}; computing instead of reading published steps", flush=True)
                self._manifests[arch] = {}
        folder = self.folder(name, config).name
        record = self._manifests[arch].get(folder)
        if record is None or record.get("key") != json.loads(json.dumps(config, default=_jsonable)):
            return None
        return pub.Entry(arch, folder, record, self.published)

    def status(self, name: str, config: dict) -> str | None:
        """`cached`, `published` (the published step would be used) or None (it would be computed)."""
        if self.is_done(name, config):
            return "cached"
        return "published" if self.published_entry(name, config) is not None else None

    def inventory(self, identity: dict) -> dict[str, dict[str, int]]:
        """Step name -> how many finished steps of this run (`identity`: arch, width, seed, data) the cache holds
        (`cached`) and how many more the published results hold (`published`), at today's versions."""
        from .keys import VERSIONS

        def ours(key) -> bool:
            return (isinstance(key, dict) and key.get("version") == VERSIONS.get(key.get("step"))
                    and all(key.get(k) == v for k, v in identity.items()))

        out: dict[str, dict[str, int]] = {}
        seen = set()
        for done in sorted(self.root.glob(f"*/{DONE}")) if self.root.is_dir() else []:
            try:
                record = read_json(done)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and ours(record.get("config")):
                seen.add(done.parent.name)
                out.setdefault(record["config"]["step"], {"cached": 0, "published": 0})["cached"] += 1
        try:
            steps = pub.read_manifest(identity["arch"], self.published)["steps"]
        except pub.PublishedError:
            steps = {}
        skip = recomputed_steps()
        for folder, entry in steps.items():
            if folder not in seen and ours(entry.get("key")) and entry["key"]["step"] not in skip:
                out.setdefault(entry["key"]["step"], {"cached": 0, "published": 0})["published"] += 1
        return out

    def _materialize(self, entry: pub.Entry, folder: Path) -> dict:
        """Write the published step into `folder` (its model file checked against the manifest first) and
        return its provenance."""
        files = entry.record.get("files", {})
        folder.mkdir(parents=True, exist_ok=True)
        try:
            if entry.record.get("model"):
                shutil.copyfile(pub.check_file(entry), self.model(folder))
            for rel, text in files.items():
                atomic_write_text(folder / rel, text)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return {**entry.record.get("provenance", {}), "published_as": entry.record.get("model", {}).get("file")}

    def is_done(self, name: str, config: dict) -> bool:
        """Whether the step finished and its files are intact (a damaged entry is set aside: not done)."""
        folder = self.folder(name, config)
        done = folder / DONE
        if not done.is_file():
            return False
        try:
            record = read_json(done)
        except (OSError, ValueError):
            return self._set_aside(folder, "has an unreadable done.json")
        expected = record.get("files") if isinstance(record, dict) else None
        if not isinstance(expected, dict) or not expected or record.get("config") != json.loads(json.dumps(config, default=_jsonable)):
            return self._set_aside(folder, "has a done.json without its files' hashes or its key")
        found = folder_digests(folder)
        if found != expected:
            differ = sorted(n for n in set(found) | set(expected) if found.get(n) != expected.get(n))
            return self._set_aside(folder, f"no longer holds the files it finished with ({', '.join(differ[:3])})")
        return True

    @staticmethod
    def _set_aside(folder: Path, why: str) -> bool:
        target = folder.with_name(f"{folder.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(folder, target)
        print(f"warning: cached step {folder.name} {why}: moved to {target.name}, computing it again", flush=True)
        return False

    @contextlib.contextmanager
    def lock(self, folder: Path):
        """Hold the step's lock for as long as the block runs: a file in `<root>/.locks/`, kept (deleting a lock
        file another process waits on would let a third one take a fresh lock beside it)."""
        import fcntl

        locks = self.root / LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{folder.name}.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting: another process is computing {folder.name}", flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def run(self, name: str, config: dict, compute: Callable[[Path], Any],
            provenance: dict | None = None, *, need_model: bool = False) -> tuple[Path, bool]:
        """Run `compute(folder)` unless this (name, config) already finished or is published; returns (folder,
        was_cached).

        `compute` writes its outputs into `folder`; `done.json` is written after it returns, with the config,
        the compute time (that of earlier attempts' saved work included) and `provenance`: the computing run's
        (commit and whether the tree was clean, machine, precision, versions), its start and end, and every
        commit whose attempt contributed saved work. A failed compute that wrote nothing leaves no folder.
        A published step with this key is written into the folder instead of computing it (with its provenance);
        `need_model`: the caller needs the step's model file, so a step published without it is computed.
        """
        folder = self.folder(name, config)
        with self.lock(folder):
            if self.is_done(name, config):
                if need_model and not self.model(folder).is_file():
                    self._set_aside(folder, "holds only the published record, and its model is needed now")
                else:
                    record = read_json(folder / DONE)
                    self.log.append({"step": name, "folder": folder.name, "cached": True,
                                     "seconds": record.get("seconds"), "provenance": step_provenance(record)})
                    return folder, True
            entry = self.published_entry(name, config)
            if entry is not None and not (need_model and not entry.record.get("model")):
                shutil.rmtree(folder, ignore_errors=True)  # an interrupted attempt: the published result supersedes it
                prov = self._materialize(entry, folder)
                seconds = prov.get("compute_seconds")
                write_json(folder / DONE, {"name": name, "config": config, "finished": time.time(), "seconds": seconds,
                                           "provenance": prov, "files": folder_digests(folder)})
                self.log.append({"step": name, "folder": folder.name, "cached": True, "seconds": seconds,
                                 "provenance": prov})
                return folder, True
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / KEY).is_file():
                write_json(folder / KEY, {"name": name, "config": config})
            earlier = saved_seconds(folder)
            started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
            try:
                compute(folder)
            except BaseException:
                if not any(f.name != KEY for f in folder.iterdir()):  # nothing worth resuming from: leave no folder
                    shutil.rmtree(folder, ignore_errors=True)
                raise
            # the earlier attempts' work this attempt resumed from (a training step restarted afresh resumed none)
            resumed = any(folder.glob("*" + PROGRESS_SUFFIX))
            earlier = saved_seconds(folder, "carried") if resumed else earlier
            seconds = time.perf_counter() - t0 + earlier
            prov = {**(provenance or {}), "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "compute_seconds": seconds}
            prov["commits"] = _attempt_commits(folder, prov.get("git_commit", "unknown"))
            write_json(folder / DONE, {"name": name, "config": config, "finished": time.time(), "seconds": seconds,
                                       "earlier_attempts_seconds": earlier, "provenance": prov,
                                       "files": folder_digests(folder)})
        self.log.append({"step": name, "folder": folder.name, "cached": False, "seconds": seconds, "provenance": prov})
        return folder, False

    def provenance(self, folder: str | Path) -> dict:
        """The provenance of the run that computed the finished step in `folder` (a name inside the cache
        root, or a path)."""
        return step_provenance(read_json(self.root / Path(folder).name / DONE))


UNRECORDED = "unrecorded"  # a step finished before steps kept their own provenance


def step_provenance(done: dict) -> dict:
    """A finished step's provenance from its `done.json`; one computed before steps kept theirs says so
    rather than borrowing the reader's."""
    prov = done.get("provenance") if isinstance(done, dict) else None
    if prov:
        return prov
    return {"git_commit": UNRECORDED, "clean": None, "commits": [UNRECORDED],
            "compute_seconds": done.get("seconds") if isinstance(done, dict) else None}


def _attempt_commits(folder: Path, current: str) -> list[str]:
    """Every commit that ran an attempt whose saved work this step carries (its progress files), then `current`."""
    commits = []
    for path in sorted(folder.glob("*" + PROGRESS_SUFFIX)):
        try:
            commits += [c for c in read_json(path).get("commits", []) if c not in commits]
        except (OSError, ValueError, AttributeError):
            pass
    return commits + [c for c in [current] if c not in commits]

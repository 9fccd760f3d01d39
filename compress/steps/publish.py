"""Publishing a session's steps next to its tables: `<results>/<arch>/models/` (`compress.published`).

Every step the session ran is published by its record (its key, provenance and small files), so a later run
anywhere continues from it; the models a later step reads or a user wants (baselines, each configuration's
and each budget's final model, the from-scratch controls) are published with their weights, within git's limits
(`published.MAX_FILE_MB`, `MAX_TOTAL_MB`): past them, a model is published by its record alone, with a warning.
A published model file is never replaced silently: a different model under the same name needs a reason.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import published as pub
from ..files import read_json
from .cache import DONE, KEY, MODEL, RECORD
from .resume import delete_finished

TEXT_SUFFIXES = (".json", ".csv", ".txt")  # the small files a published record carries (never weights or exports)


def _small_files(folder: Path) -> dict[str, str]:
    return {f.relative_to(folder).as_posix(): f.read_text() for f in sorted(folder.rglob("*"))
            if f.is_file() and f.suffix in TEXT_SUFFIXES and f.name not in (DONE, KEY) and ".progress" not in f.name}


def _rows(s, folder: str) -> list[dict]:
    """The table rows a step backs: `{"table", "step"}` where the table names its rows' steps, else the table."""
    out = []
    for name, steps in s.table_steps.items():
        if folder not in steps:
            continue
        table = s.tables.get(name)
        if table is not None and "step" in table and (table["step"] == folder).any():
            out.append({"table": f"{name}.csv", "step": folder})
        elif table is not None and "step" not in table:
            out.append({"table": f"{name}.csv"})
    return out


def _published_bytes(root: Path, skip: set[Path]) -> int:
    """Bytes of the model files every manifest under `root` lists (the ones being rewritten left out)."""
    total = 0
    for arch in pub.published_archs(root):
        for e in pub.entries(arch, root):
            path = e.model_file
            if path is not None and path not in skip and path.is_file():
                total += path.stat().st_size
    return total


def publish_steps(s, results_dir: Path, *, replace_reason: str | None = None,
                  folders: list[str] | None = None) -> Path | None:
    """Write every step of the session `s`'s `cache.log` (or only `folders`) into `<results_dir>/<arch>/models/manifest.json`,
    and the models of `s.publishable` beside it. Returns the manifest's path (None when there was no step)."""
    logged = list(dict.fromkeys(folders if folders is not None else [e["folder"] for e in s.cache.log]))
    if not logged:
        return None
    root = Path(results_dir)
    models = pub.models_dir(s.arch, root)
    manifest = pub.read_manifest(s.arch, root)
    steps = manifest["steps"]
    total = _published_bytes(root, set())
    for folder_name in logged:
        folder = s.cache.root / folder_name
        done = read_json(folder / DONE)
        old = steps.get(folder_name, {})
        # a step published again before this session wrote its tables (`publish_each`) keeps the rows it backs
        entry = {"step": done["name"], "key": done["config"], "provenance": done.get("provenance", {}),
                 "files": _small_files(folder), "rows": _rows(s, folder_name) or old.get("rows", [])}
        record = read_json(folder / RECORD).get("record", {}) if (folder / RECORD).is_file() else {}
        name = s.publishable.get(folder_name)
        if name is not None and (folder / MODEL).is_file():
            target = models / f"{name}.pt"
            sha, size = pub.file_sha256(folder / MODEL), (folder / MODEL).stat().st_size
            held = target.stat().st_size if target.is_file() else 0
            if target.is_file() and pub.file_sha256(target) != sha and replace_reason is None:
                print(f"warning: {target} holds another {name} model; not replaced (a published model is replaced "
                      f"only for a stated reason): {folder_name} is published by its record", flush=True)
            elif size > pub.MAX_FILE_MB * 1e6:
                print(f"warning: {name} is {size / 1e6:.1f} MB, over the {pub.MAX_FILE_MB} MB a file may hold in git: "
                      f"published by its record", flush=True)
            elif total - held + size > pub.MAX_TOTAL_MB * 1e6:
                print(f"warning: publishing {name} ({size / 1e6:.1f} MB) would bring the published models to "
                      f"{(total - held + size) / 1e6:.0f} MB, over {pub.MAX_TOTAL_MB} MB: published by its record", flush=True)
            else:
                if not (target.is_file() and pub.file_sha256(target) == sha):
                    models.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(f".{target.name}.tmp")
                    shutil.copyfile(folder / MODEL, tmp)
                    tmp.replace(target)
                    total += size - held
                entry["model"] = {"file": target.name, "sha256": sha, "bytes": size,
                                  "dtype": record.get("stored_dtype", "float32"),
                                  "fp16_agreement": record.get("fp16_agreement"), "test_top1": record.get("test_top1")}
                # an earlier model published under this name: its step's record stays, without the file, and
                # the reason it was replaced is kept beside the new one
                for other, rec in steps.items():
                    previous = rec.get("model", {})
                    if previous.get("file") == target.name and previous.get("sha256") != sha:
                        entry["replaced"] = [*rec.get("replaced", []), {"sha256": previous["sha256"], "step": other,
                                                                       "reason": replace_reason}]
                    if other != folder_name and previous.get("file") == target.name:
                        rec.pop("model")
        elif old.get("model"):
            entry["model"] = old["model"]  # published earlier with its model (this run read it back)
        steps[folder_name] = entry
        delete_finished(root, s.arch, folder_name)
    pub.write_manifest(s.arch, {**manifest, "steps": steps}, root)
    return models / pub.MANIFEST


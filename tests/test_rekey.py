"""Version-1 cache entries (keys holding the whole profile) move to their version-2 keys and are reused."""
import json
import os

import pytest

from conftest import tiny_model

from compress import steps
from compress.steps.cache import DONE, config_key
from compress.steps.rekey import main, precision_from_device, rekey


def _as_version_1(s, folder, name):
    """Rewrite a finished entry as the version-1 code keyed it: the whole profile plus the step's settings
    (fine-tune configs as `to_dict()` with display fields None, precision `auto`, optional fields absent)."""
    record = json.loads((folder / DONE).read_text())
    new = record["config"]
    old = {"arch": s.arch, "profile": s.profile.to_dict(), "seed": s.seed, "data": s.data.summary(), "step": name}
    reads = {k: v for k, v in new.items() if k not in ("step", "key_version", "arch", "width", "seed", "data")}
    if name == "sensitivity":
        reads = {k: reads[k] for k in ("baseline", "ratios", "criterion")}
    if name == "prune_round":
        cfg = dict(reads.pop("finetune"), precision="auto", eval_batch_size=s.profile.eval_batch_size,
                   progress=None, desc=None)
        assert reads.pop("rescale") is False  # version 1 held `rescale` only for models without BN
        reads["finetune"] = cfg
    old.update(reads)
    record["config"] = old
    target = folder.with_name(f"{name}-{config_key(old)}")
    (folder / DONE).write_text(json.dumps(record))
    os.replace(folder, target)
    return target


def test_version_1_entries_are_moved_and_then_read_back_without_recomputing(tiny_data, monkeypatch, capsys):
    s = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    baseline = tiny_model("vgg16_bn")
    scan = steps.sensitivity(s, baseline)
    fixed = steps.fixed_point(s, baseline, bits=(8,))
    pruned = steps.prune_rounds(s, baseline, {"a": 0.5}, 1, round_to=2)
    for entry in list(s.cache.log):
        _as_version_1(s, s.cache.root / entry["folder"], entry["step"])
    assert not [p for p in s.cache.root.iterdir() if p.name.startswith(("sensitivity", "fixed_point", "prune_round"))
                and (p / DONE).is_file() and json.loads((p / DONE).read_text())["config"].get("key_version")]

    assert len(rekey(s.cache.root, dry_run=True)) == 3 and "would move" in capsys.readouterr().out
    moved = rekey(s.cache.root)  # the precision comes from each step's own files (fp32 on this machine's string)
    assert len(moved) == 3
    for name in ("compress.steps.importance.scans.sensitivity_scan", "compress.steps.pruning.fit",
                 "compress.steps.quantization.fixed_point_table"):
        monkeypatch.setattr(name, lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = steps.Session.create("vgg16_bn", "smoke", data=tiny_data)
    assert steps.sensitivity(again, baseline).equals(scan)
    assert steps.fixed_point(again, baseline, bits=(8,)).equals(fixed)
    assert steps.prune_rounds(again, baseline, {"a": 0.5}, 1, round_to=2).rounds.test_top1.equals(pruned.rounds.test_top1)
    assert rekey(s.cache.root) == []  # nothing left to move: a second run changes nothing


def test_precision_is_read_from_the_machine_string():
    assert precision_from_device("cpu (Intel(R) Xeon(R) Processor [family 6 model 207; AVX512, AVX512-BF16, AMX], 2 cores)") == "bf16"
    assert precision_from_device("cpu (Intel(R) Xeon(R) Processor [family 6 model 207; AVX512, AVX512-BF16, no AMX])") == "fp32"
    assert precision_from_device("cpu (AMD EPYC 9R45 [family 26 model 2; AVX512, AVX512-BF16, no AMX])") == "bf16"
    assert precision_from_device("cpu (Intel(R) Xeon(R) Processor, 2 cores, 2 threads)") is None  # no features: ask


def test_the_command_refuses_a_missing_cache_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: no step cache at")
    with pytest.raises(SystemExit):
        main(["--precision", "fp16", str(tmp_path)])

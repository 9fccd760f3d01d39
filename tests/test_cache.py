import json
import os
import stat

import pandas as pd
import pytest

from compress import files, provenance as prov_mod
from compress.steps.cache import StepCache, config_key
from compress.train import progress_path
from compress.provenance import provenance
from compress.files import read_table, write_json, write_table


def test_table_round_trip_keeps_provenance(tmp_path):
    prov = provenance({"arch": "resnet18"}, seed=3, data_source="synthetic", device="cpu")
    assert {"config", "seed", "versions", "git_commit", "device", "data_source"} <= set(prov)
    df = pd.DataFrame({"config": ["a,b", "c#d"], "top1": [91.5, 90.25]})
    write_table(tmp_path / "t.csv", df, prov)
    back, meta = read_table(tmp_path / "t.csv")
    pd.testing.assert_frame_equal(back, df)
    assert meta["seed"] == 3 and meta["versions"]["torch"]


def test_step_cache_runs_once_and_recomputes_on_change(tmp_path):
    cache, calls = StepCache(tmp_path), []

    def compute(folder):
        calls.append(folder)
        (folder / "out.txt").write_text("x")

    _, cached = cache.run("s", {"a": 1}, compute)
    assert not cached
    _, cached = cache.run("s", {"a": 1}, compute)
    assert cached and len(calls) == 1
    cache.run("s", {"a": 2}, compute)
    assert len(calls) == 2


def test_half_written_step_is_ignored(tmp_path):
    cache = StepCache(tmp_path)
    folder = cache.folder("s", {"a": 1})
    folder.mkdir(parents=True)
    (folder / "out.txt").write_text("partial")  # interrupted: no done.json
    ran = []
    cache.run("s", {"a": 1}, lambda f: ran.append(f))
    assert ran and json.loads((folder / "done.json").read_text())["config"] == {"a": 1}


def test_a_step_finished_over_two_attempts_counts_the_work_the_first_one_saved(tmp_path):
    cache = StepCache(tmp_path)

    def interrupted(folder):  # saves 100 s of work to resume from, then the session ends
        write_json(progress_path(folder / "state.pt"), {"seconds": 100.0})
        raise RuntimeError("the session ends")

    with pytest.raises(RuntimeError):
        cache.run("train", {"x": 1}, interrupted)
    cache.run("train", {"x": 1}, lambda folder: None)  # resumes and finishes in no time
    cache.run("fresh", {"x": 1}, lambda folder: None)
    (resumed, fresh) = cache.log
    assert 100.0 <= resumed["seconds"] < 110.0 and fresh["seconds"] < 10.0


def test_an_unreadable_progress_file_counts_nothing(tmp_path, capsys):
    cache = StepCache(tmp_path)
    folder = cache.folder("train", {"x": 1})
    folder.mkdir(parents=True)
    progress_path(folder / "state.pt").write_text('{"seconds": 10')  # torn
    cache.run("train", {"x": 1}, lambda folder: None)
    assert cache.log[0]["seconds"] < 10.0 and "unreadable progress file" in capsys.readouterr().out


def test_config_key_is_order_independent():
    assert config_key({"a": 1, "b": 2}) == config_key({"b": 2, "a": 1}) != config_key({"a": 1, "b": 3})


def test_step_cache_records_each_step_and_its_compute_time(tmp_path):
    cache = StepCache(tmp_path)
    cache.run("a", {"x": 1}, lambda folder: (folder / "out.txt").write_text("1"))
    cache.run("a", {"x": 1}, lambda folder: 1 / 0)  # cached: not called
    assert [(e["step"], e["cached"]) for e in cache.log] == [("a", False), ("a", True)]
    assert cache.log[0]["seconds"] == cache.log[1]["seconds"] >= 0


def test_fingerprint_follows_the_weights_not_their_memory_format():
    import torch

    from compress.models import build_model
    from compress.steps.cache import fingerprint

    model = build_model("vgg16_bn", width=0.125)
    before = fingerprint(model)
    assert fingerprint(model.to(memory_format=torch.channels_last)) == before
    with torch.no_grad():
        model.conv1_1.weight[0, 0, 0, 0] += 1
    assert fingerprint(model) != before


def test_device_name_tells_cpus_of_one_model_name_apart(monkeypatch):
    base = {"model name": "Intel(R) Xeon(R) Processor", "vendor_id": "GenuineIntel", "cpu family": "6", "model": "207"}
    monkeypatch.setattr(prov_mod, "cpu_info", lambda: {**base, "flags": "fpu avx512f avx512_bf16 amx_tile amx_bf16"})
    amx = prov_mod.device_name("cpu")
    monkeypatch.setattr(prov_mod, "cpu_info", lambda: {**base, "flags": "fpu avx512f avx512_bf16"})
    no_amx = prov_mod.device_name("cpu")
    assert "[family 6 model 207; AVX512, AVX512-BF16, AMX, no VNNI]" in amx
    assert "[family 6 model 207; AVX512, AVX512-BF16, no VNNI, no AMX]" in no_amx
    monkeypatch.setattr(prov_mod, "cpu_info", lambda: {**base, "flags": "fpu avx2 avx512f avx512_vnni"})
    assert "AVX2, AVX512, AVX512-VNNI, no native bf16]" in prov_mod.device_name("cpu")  # an Ice Lake VM
    monkeypatch.setattr(prov_mod, "cpu_info", lambda: {})  # no /proc/cpuinfo: the platform's word
    assert prov_mod.device_name("cpu").startswith("cpu (")



def test_atomic_writes_give_files_the_mode_a_plain_open_would(tmp_path):
    """Tables and figures written through a temp file must not end up private (mkstemp's 0600)."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = files.atomic_write_text(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    old = os.umask(0o077)
    try:
        private = files.atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def _step(cache, calls, value="a"):
    def compute(folder):
        calls.append(value)
        (folder / "model.pt").write_bytes(value.encode() * 100)
        write_json(folder / "result.json", {"value": value})
    return cache.run("train", {"x": 1}, compute)


@pytest.mark.parametrize("damage", ["swap", "truncate", "delete", "done"])
def test_a_damaged_finished_step_is_set_aside_and_recomputed(tmp_path, capsys, damage):
    cache, calls = StepCache(tmp_path), []
    folder, _ = _step(cache, calls)
    if damage == "swap":  # another valid file in its place
        (folder / "model.pt").write_bytes(b"b" * 100)
    elif damage == "truncate":
        (folder / "model.pt").write_bytes(b"a" * 10)
    elif damage == "delete":
        (folder / "result.json").unlink()
    else:
        (folder / "done.json").write_text('{"name": "tr')
    again, cached = _step(cache, calls)
    assert not cached and calls == ["a", "a"] and again == folder
    out = capsys.readouterr().out
    assert f"warning: cached step {folder.name}" in out and "computing it again" in out
    (aside,) = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert aside.is_dir()  # kept for a look, never used
    assert _step(cache, calls)[1] and calls == ["a", "a"]  # the rebuilt entry is trusted again


@pytest.mark.parametrize("done", ["{}", "[]", "no-hashes", "other-key"])
def test_a_done_json_without_its_hashes_or_its_key_is_damaged_even_beside_a_swapped_model(tmp_path, capsys, done):
    """`{}` beside another run's model.pt must not be re-hashed and served under this key."""
    cache, calls = StepCache(tmp_path), []
    folder, _ = _step(cache, calls)
    (folder / "model.pt").write_bytes(b"seed-1 weights" * 10)
    record = json.loads((folder / "done.json").read_text())
    text = {"{}": "{}", "[]": "[]", "no-hashes": json.dumps({k: v for k, v in record.items() if k != "files"}),
            "other-key": json.dumps({**record, "config": {"x": 2}})}[done]
    (folder / "done.json").write_text(text)
    again, cached = _step(cache, calls)
    assert not cached and calls == ["a", "a"] and (again / "model.pt").read_bytes() == b"a" * 100
    assert "computing it again" in capsys.readouterr().out


def test_a_second_process_waits_for_the_step_then_finds_it(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys, time
        from compress.steps.cache import StepCache
        def compute(folder):
            print("computing", flush=True)
            time.sleep(float(sys.argv[1]))
            (folder / "out.txt").write_text("done")
        folder, cached = StepCache({str(tmp_path)!r}).run("slow", {{"x": 1}}, compute)
        print("cached" if cached else "computed", flush=True)
    """)
    first = subprocess.Popen([sys.executable, "-c", script, "4"], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "computing"
    second = subprocess.run([sys.executable, "-c", script, "0"], capture_output=True, text=True, timeout=120)
    first.wait(timeout=120)
    assert "waiting: another process is computing slow-" in second.stdout
    assert second.stdout.strip().endswith("cached") and "computing" not in second.stdout.replace("is computing", "")


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    import subprocess
    import sys

    script = (f"import time\nfrom compress.steps.cache import StepCache\n"
              f"def compute(folder):\n    print('computing', flush=True)\n    time.sleep(SECONDS)\n"
              f"    (folder / 'out.txt').write_text('done')\n"
              f"print(StepCache({str(tmp_path)!r}).run('slow', {{'x': 1}}, compute)[1], flush=True)\n")
    first = subprocess.Popen([sys.executable, "-c", script.replace("SECONDS", "600")], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "computing"
    first.kill()
    first.wait(timeout=60)
    second = subprocess.run([sys.executable, "-c", script.replace("SECONDS", "0")], capture_output=True, text=True, timeout=120)
    assert second.stdout.split() == ["computing", "False"] and "waiting" not in second.stdout


def test_a_restarted_training_step_does_not_count_the_discarded_attempt(tmp_path, tiny_data):
    import torch

    from compress.models import build_model
    from compress.train import TrainConfig, fit

    cache = StepCache(tmp_path)
    cfg = TrainConfig(epochs=1, batch_size=128, eval_batch_size=256, progress=False)
    folder = cache.folder("train", {"x": 1})
    folder.mkdir(parents=True)
    torch.save({"format": "another run"}, folder / "train_state.pt")  # a state fit will not resume from
    write_json(progress_path(folder / "train_state.pt"), {"seconds": 1000.0, "epoch": 3, "epochs": 4})
    cache.run("train", {"x": 1}, lambda f: fit(build_model("vgg16", width=0.125), tiny_data, cfg,
                                               state_path=f / "train_state.pt"))
    done = json.loads((folder / "done.json").read_text())
    assert done["earlier_attempts_seconds"] == 0 and done["seconds"] < 1000

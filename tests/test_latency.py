"""compress/quant/latency.py: every latency from fresh processes, alternating, with its spread kept and flagged."""
import pytest

from compress.checkpoint import save_checkpoint
from compress.quant.latency import COLUMNS, SPREAD_LIMIT, Variant, measure
from compress.models import build_model
from compress.quant.deploy import export_onnx


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifacts")
    model = build_model("vgg16_bn", width=0.125).eval()
    save_checkpoint(model, folder / "model.pt", "vgg16_bn", 0.125, meta={"stage": "baseline"})
    export_onnx(model, folder / "model.onnx")
    return folder


def test_each_variant_and_thread_count_is_timed_in_fresh_processes(artifacts, tmp_path, monkeypatch):
    """One real process per (variant, thread count, round), each told its thread count, from any folder (a
    notebook's kernel runs in notebooks/); the median of several processes: the next test."""
    import subprocess

    from compress.quant import latency

    started, real_run = [], subprocess.run

    def run(cmd, **kw):
        started.append((cmd[3], kw["env"]["OMP_NUM_THREADS"], cmd[5]))  # runtime, its thread count, argv's threads
        return real_run(cmd, **kw)

    monkeypatch.setattr(latency.subprocess, "run", run)
    monkeypatch.chdir(tmp_path)
    variants = [Variant("tiny", "torch", artifacts / "model.pt"), Variant("tiny", "onnxruntime", artifacts / "model.onnx")]
    table = measure(variants, threads=(1, 2), processes=1, warmup=2, runs=10)
    assert sorted(started) == [("onnxruntime", "1", "1"), ("onnxruntime", "2", "2"), ("torch", "1", "1"), ("torch", "2", "2")]
    assert list(table.columns) == COLUMNS and len(table) == 4
    assert (table.processes == 1).all() and (table.runs == 10).all() and (table.latency_ms > 0).all()
    assert ((table.min_ms <= table.latency_ms) & (table.latency_ms <= table.max_ms)).all()
    assert set(table.threads) == {1, 2} and set(table.runtime) == {"torch", "onnxruntime"}


def test_processes_alternate_and_the_row_keeps_the_median_of_their_medians(artifacts, monkeypatch):
    """Three processes per row, started in rotation (each round from the next job, so a drift of the machine's
    speed spreads over every row alike), each row the median of their medians with its min-max spread, flagged
    above `SPREAD_LIMIT`."""
    from compress.quant import latency

    order, medians = [], {("torch", 1): [3.0, 1.0, 2.0], ("torch", 2): [1.0, 1.05, 1.1],
                          ("onnxruntime", 1): [4.0, 4.0, 4.0], ("onnxruntime", 2): [2.0, 2.0, 3.0]}

    def one_process(v, threads, warmup, runs, timeout):
        order.append((v.runtime, threads))
        ms = medians[(v.runtime, threads)][sum(o == (v.runtime, threads) for o in order) - 1]
        return {"median_ms": ms, "p90_ms": ms * 2, "threads": threads}

    monkeypatch.setattr(latency, "_one_process", one_process)
    variants = [Variant("tiny", "torch", artifacts / "model.pt"), Variant("tiny", "onnxruntime", artifacts / "model.onnx")]
    table = measure(variants, threads=(1, 2), processes=3, warmup=2, runs=10)
    jobs = [("torch", 1), ("torch", 2), ("onnxruntime", 1), ("onnxruntime", 2)]
    assert order == jobs + jobs[1:] + jobs[:1] + jobs[2:] + jobs[:2]
    row = table.set_index(["runtime", "threads"])
    assert row.latency_ms.to_dict() == {("torch", 1): 2.0, ("torch", 2): 1.05, ("onnxruntime", 1): 4.0,
                                        ("onnxruntime", 2): 2.0}
    assert row.latency_p90_ms["torch", 1] == 4.0 and row.min_ms["torch", 1] == 1.0 and row.max_ms["torch", 1] == 3.0
    assert row.spread["torch", 1] == pytest.approx(2.0) and row.spread["onnxruntime", 1] == 0
    assert (table.processes == 3).all() and (table.runs == 10).all()
    assert (table.flagged == (table.spread > SPREAD_LIMIT)).all()
    assert row.flagged.to_dict() == {("torch", 1): True, ("torch", 2): False, ("onnxruntime", 1): False,
                                     ("onnxruntime", 2): True}


def test_bad_variants_are_one_line(artifacts, tmp_path):
    with pytest.raises(ValueError, match="unknown runtime 'tflite'"):
        Variant("x", "tflite", artifacts / "model.pt")
    with pytest.raises(FileNotFoundError, match="no saved model at"):
        Variant("x", "torch", tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"timing 'x' \(torch, 1 threads\) failed: .*cannot read checkpoint"):
        measure([Variant("x", "torch", broken)], threads=(1,), processes=1, warmup=0, runs=1)

"""benchmarks/qat_gap.py: one clear error line without a cached baseline; with one, it scores every model on
the same test images and reports the conversion's own cost."""
import os
import re
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "qat_gap.py"


def run(args, cache):
    env = {**os.environ, "COMPRESS_DATA": "synthetic", "COMPRESS_CACHE": str(cache)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


def test_without_a_baseline_one_error_line(tmp_path):
    out = run([str(SCRIPT), "--profile", "smoke"], tmp_path)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("error: no trained resnet18 baseline")
    assert "Traceback" not in out.stderr


def test_bad_freeze_point_is_refused(tmp_path):
    out = run([str(SCRIPT), "--profile", "smoke", "--freeze-bn-at", "1.5"], tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error: freeze_bn_at is a fraction of the training steps in [0, 1]")


def test_scores_fp32_fake_quantized_converted_and_control(tmp_path):
    assert run(["-m", "compress", "train", "--arch", "resnet18", "--profile", "smoke", "--results",
                str(tmp_path / "results")], tmp_path).returncode == 0
    out = run([str(SCRIPT), "--profile", "smoke", "--control"], tmp_path)
    assert out.returncode == 0, out.stderr
    rows = dict(re.findall(r"^  (FP32 baseline|fake-quantized \(end of QAT\)|converted INT8|FP32 fine-tuned \(control\))"
                           r"\s+top-1 ([\d.]+)%", out.stdout, flags=re.M))
    assert len(rows) == 4, out.stdout
    assert all(0.0 <= float(v) <= 100.0 for v in rows.values())
    assert re.search(r"converted - fake-quantized: [+-][\d.]+ ± [\d.]+ points \(gained \d+, lost \d+\) on \d+ images",
                     out.stdout)

"""The checkout guard (tests/conftest.py, tests/guard/) blames the tests only for what they wrote: writes by the
suite's processes are recorded, a process running beside the suite (a `reproduce` writing runs/) is not."""
import os
import subprocess
import sys

from conftest import GUARD

from compress.files import atomic_write_text


def _write_in_a_process(path, env):
    subprocess.run([sys.executable, "-c", f"open({str(path)!r}, 'w').write('x')"], env=env, check=True, timeout=60)


def test_the_suites_writes_are_recorded_and_a_neighbours_are_not(tmp_path, monkeypatch):
    root = tmp_path / "runs" / "smoke"  # stands in for the checkout's runs/smoke
    root.mkdir(parents=True)
    (root / "old.csv").write_text("kept")
    log = tmp_path / "written.txt"
    monkeypatch.setattr(GUARD, "ROOTS", (str(root),))
    monkeypatch.setitem(GUARD._state, "log", str(log))
    (root / "plain.csv").write_text("1")  # open for writing, in this process
    assert (root / "old.csv").read_text() == "kept"  # a read is no write
    atomic_write_text(root / "atomic.csv", "2")  # compress.files: a temp file renamed into place
    (tmp_path / "elsewhere.txt").write_text("3")  # outside the watched folders
    env = {**os.environ, GUARD.LOG_ENV: str(log), GUARD.WATCH_ENV: str(root)}  # PYTHONPATH carries tests/guard
    _write_in_a_process(root / "child.csv", env)  # a process the suite started
    _write_in_a_process(root / "neighbour.csv", {k: v for k, v in env.items() if k != GUARD.LOG_ENV})
    (root / "plain.csv").unlink()  # deleting is writing too
    recorded = GUARD.written(str(log))
    assert {str(root / n) for n in ("plain.csv", "atomic.csv", "child.csv")} <= recorded
    assert not {str(root / "old.csv"), str(root / "neighbour.csv"), str(tmp_path / "elsewhere.txt")} & recorded


def test_only_changes_the_run_wrote_fail_the_suite(tmp_path):
    a, b, c, d = (tmp_path / "runs" / n for n in ("a.csv", "b.csv", "gone/c.csv", "new.csv"))
    before = {a: 1, b: 1, c: 1}
    after = {a: 2, b: 2, d: 1}  # a and b rewritten, c's folder removed, d created
    written = {str(a), str(c.parent)}  # the tests wrote a and removed c's folder; b and d were a neighbour's
    assert GUARD.written_changes(before, after, written) == [a, c]
    assert GUARD.written_changes(before, dict(before), written) == []  # written but unchanged: nothing to blame


PROBE = '''
import os, subprocess, sys
from pathlib import Path

ROOT = Path(os.environ["COMPRESS_TEST_WATCH"])


def test_probe():
    if os.environ["PROBE"] == "test writes":
        (ROOT / "by_a_test.csv").write_text("x")
    else:  # a process outside the suite's guarded processes, e.g. `reproduce --profile smoke` run beside it
        env = {k: v for k, v in os.environ.items() if k != "COMPRESS_TEST_WRITES"}
        subprocess.run([sys.executable, "-c", f"open({str(ROOT / 'by_a_neighbour.csv')!r}, 'w').write('x')"],
                       env=env, check=True)
'''


def test_a_suite_fails_on_its_own_writes_only(tmp_path):
    """Two small suites under this conftest, watching a temporary runs/smoke: the one whose test writes there fails,
    the one beside which another process writes there passes (the old guard failed both)."""
    root = tmp_path / "runs" / "smoke"
    root.mkdir(parents=True)
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_probe.py").write_text(PROBE)
    tests = os.path.dirname(os.path.abspath(__file__))
    outcomes = {}
    for probe in ("test writes", "a neighbour writes"):
        env = {**os.environ, "PROBE": probe, GUARD.WATCH_ENV: str(root),
               "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
        env.pop(GUARD.LOG_ENV)  # a suite of its own, with its own log
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                              "--rootdir", str(tmp_path / "suite"), str(tmp_path / "suite")],
                             capture_output=True, text=True, cwd=tmp_path / "suite", env=env, timeout=300)
        outcomes[probe] = (out.returncode, out.stdout[-2000:])
    code, text = outcomes["test writes"]
    assert code != 0 and "tests wrote into the checkout" in text and "by_a_test.csv" in text, text
    code, text = outcomes["a neighbour writes"]
    assert code == 0 and (root / "by_a_neighbour.csv").is_file(), text

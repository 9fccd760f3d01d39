"""Freed memory is kept for reuse (compress/allocator.py) where an entry point asks for it: a large block freed and
allocated again costs no page faults the second time. Importing the package changes nothing: glibc's malloc maps
and unmaps every large block as usual. Each probe runs in a fresh process and counts the page faults it sees."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux only")

# `setup` runs first; then allocate, touch and free a 64 MiB tensor four times to warm up (the heap settles after
# two or three: an aligned block may not fit the hole the last one left), then eight more times: their faults
PROBE = """
import json, resource, sys, torch
{setup}
from compress import allocator
def cycle():
    torch.empty(16 * 2**20, dtype=torch.float32).fill_(1.0)
for _ in range(4):
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    cycle()
print(json.dumps({{"kept": allocator.kept(), "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}}))
"""
BLOCK = 64 * 2**20 // 4096  # the pages one fresh 64 MiB block faults in

EXPLICIT = "from compress.allocator import keep_freed_memory; keep_freed_memory()"
CLI = """
from compress.cli import main
try:
    main(["--help"])  # the entry point: it sets malloc up before parsing anything
except SystemExit:
    pass
"""


def probe(setup: str, setting: str = "keep") -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True, check=True,
                         env={**os.environ, "COMPRESS_MALLOC": setting})
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_importing_the_package_leaves_malloc_as_it_is():
    result, _ = probe("import compress; compress.fit, compress.prune  # the package and two of its verbs")
    assert not result["kept"]
    assert result["faults"] > 4 * BLOCK  # glibc maps every 64 MiB block anew, as in a process without compress


def test_keep_freed_memory_reuses_freed_blocks_without_page_faults():
    kept, _ = probe(EXPLICIT)
    system, _ = probe(EXPLICIT, "system")
    assert kept["kept"] and not system["kept"]
    assert system["faults"] > 4 * BLOCK  # COMPRESS_MALLOC=system: glibc maps each of the eight anew...
    # ...kept, freed pages serve the next block: none faulted again on the Xeons, 3 to 5 of 8 blocks' worth on a
    # Zen 3 EPYC VM (an aligned block does not always fit where the last one was), against all 8 without it
    assert kept["faults"] < system["faults"] - BLOCK


def test_the_command_line_keeps_freed_memory():
    result, _ = probe(CLI)
    system, _ = probe(CLI, "system")
    assert result["kept"] and result["faults"] < system["faults"] - BLOCK


def test_unknown_setting_warns_once_and_keeps():
    result, stderr = probe(EXPLICIT, "sometimes")
    assert result["kept"]
    assert "COMPRESS_MALLOC='sometimes' is not one of keep, system" in stderr


def test_notebooks_keep_freed_memory_before_the_session():
    """The generated notebooks call it in their own cell, ahead of the cell that builds the session."""
    spec = importlib.util.spec_from_file_location("notebook_build", Path(__file__).parent.parent / "notebooks" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    code = [c.source for c in build.cells("vgg16") if c.cell_type == "code"]
    setup = next(i for i, src in enumerate(code) if "keep_freed_memory()" in src)
    session = next(i for i, src in enumerate(code) if "Session.create" in src)
    assert setup < session

"""Freed memory is kept for reuse (compress/allocator.py): a large block freed and allocated again costs no page
faults the second time, unless COMPRESS_MALLOC=system asks for glibc's own behaviour."""
import json
import os
import subprocess
import sys

import pytest

import compress

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux only")

# allocate, touch and free a 64 MiB tensor four times to warm up (the heap settles after two or three: an aligned
# block may not fit the hole the last one left), then eight more times: their faults
PROBE = """
import json, resource, torch, compress
def cycle():
    torch.empty(16 * 2**20, dtype=torch.float32).fill_(1.0)
for _ in range(4):
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    cycle()
print(json.dumps({"kept": compress.MALLOC_KEPT,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(setting: str) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, "COMPRESS_MALLOC": setting})
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_import_keeps_freed_memory_in_this_process():
    assert compress.MALLOC_KEPT is (os.environ.get("COMPRESS_MALLOC", "keep") != "system")


def test_freed_block_is_reused_without_page_faults():
    kept, _ = probe("keep")
    system, _ = probe("system")
    assert kept["kept"] and not system["kept"]
    block = 64 * 2**20 // 4096  # the pages one fresh 64 MiB block faults in
    assert system["faults"] > 4 * block  # glibc maps every 64 MiB block anew...
    assert kept["faults"] < block // 2  # ...kept, the same pages serve all eight


def test_unknown_setting_warns_once_and_keeps():
    result, stderr = probe("sometimes")
    assert result["kept"]
    assert "COMPRESS_MALLOC='sometimes' is not one of keep, system" in stderr

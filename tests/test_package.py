"""`import compress` is the front door: cheap, without side effects, and every verb it lists resolves."""
import importlib.util
import json
import subprocess
import sys
import types

import pytest

import compress



def test_import_loads_nothing_heavy():
    """A fresh process: importing the package pulls in neither torch nor numpy nor pandas, nor any submodule."""
    code = ("import json, sys, compress; print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torch', 'numpy', 'pandas', 'compress'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["compress"]


@pytest.mark.parametrize("name", sorted(compress.__all__))
def test_every_exported_name_resolves(name):
    value = getattr(compress, name)
    assert not isinstance(value, types.ModuleType)
    module, _, attribute = compress._EXPORTS[name].partition(":")
    assert value is getattr(importlib.import_module(f"compress.{module}"), attribute)


def test_dir_lists_every_verb():
    listed = dir(compress)
    assert set(compress.__all__) <= set(listed)
    for verb in ("load_published", "prune", "prune_to_budget", "allocate", "quantize_int8", "quantize_fixed_point",
                 "quantize_qat", "fit", "evaluate", "count_macs", "verify", "load_cifar10", "build_model"):
        assert verb in compress.__all__ and verb in listed


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    with pytest.raises(AttributeError, match="no attribute 'pruune'"):
        compress.pruune
    from compress import steps  # a submodule, not a verb: the import system finds it after __getattr__ declines

    assert isinstance(steps, types.ModuleType) and steps.__name__ == "compress.steps"

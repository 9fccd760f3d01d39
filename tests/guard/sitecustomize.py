"""Loaded at start-up by the Python processes the test suite starts (tests/conftest.py puts this folder first on
their PYTHONPATH): each records the files it writes inside the checkout (checkout_writes.py). Any other
sitecustomize this one shadows is loaded after it, so the environment is otherwise unchanged."""
import importlib
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("COMPRESS_TEST_WRITES"):
    sys.path.insert(0, _here)
    try:
        import checkout_writes

        checkout_writes.install()
    finally:
        sys.path.remove(_here)

# chain to a sitecustomize further down the path, if there is one
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_self = sys.modules.pop("sitecustomize", None)
try:
    importlib.import_module("sitecustomize")
except ImportError:
    sys.modules["sitecustomize"] = _self

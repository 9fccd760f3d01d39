"""compress: make CIFAR-10 CNNs smaller and faster with pruning and quantization, with honest numbers.

Layers, each importing only those below it (tests/test_layers.py keeps it so):
    entry points   cli, reproduce, interactive, the notebooks
    steps, report  steps/ (the typed Session and every cached step), report/ (figures and summaries from tables)
    algorithms     importance, ratios, pruning, sparse, quant/   (plain arguments in, values out)
    foundation     profiles, data, models, train, metrics, checkpoint, files, provenance, allocator
"""
from .allocator import keep_freed_memory
from .profiles import Profile, get_profile

# before any tensor exists: CPU evaluation at full width runs 1.3-1.8x faster with freed memory kept (allocator.py)
MALLOC_KEPT = keep_freed_memory()

__all__ = ["Profile", "get_profile"]
__version__ = "0.1.0"

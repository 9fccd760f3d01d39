"""compress: make CIFAR-10 CNNs smaller and faster with pruning and quantization, with honest numbers.

The verbs, importable from the package itself (each loads its module on first use, so `import compress` is cheap
and changes nothing in the process):

    import compress
    model = compress.load_published("resnet18")               # a published model, checked against its sha256
    data = compress.load_cifar10("../shared/cifar-10-batches-bin")
    compress.evaluate(model, data.test)                         # {"top1": ..., "top5": ..., "loss": ...}
    compress.count_macs(model)
    small, allocation = compress.prune_to_budget(model, "4x")  # in place; or compress.prune(model, 0.5)
    compress.fit(small, data, compress.TrainConfig(epochs=5, lr=0.02))
    int8 = compress.quantize_int8(small, compress.Int8Config(), compress.calibration_batches(data.train, 8, 64))

`fit`, `evaluate`, `sensitivity_scan` and `quantize_qat` also take any iterable of (images, labels) batches, such
as a torch DataLoader. CPU evaluation runs 1.3-1.8x faster with `compress.keep_freed_memory()` called once
(the CLI, `reproduce` and the notebooks do; see allocator.py).

Layers, each importing only those below it (tests/test_layers.py keeps it so):
    entry points   cli, reproduce, interactive, the notebooks
    steps, report  steps/ (the typed Session and every cached step), report/ (figures and summaries from tables)
    algorithms     importance, ratios, pruning, sparse, quant/   (plain arguments in, values out)
    foundation     profiles, data, models, train, metrics, checkpoint, files, provenance, allocator
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> "module:attribute" (relative to this package), resolved on first access by __getattr__ below
_EXPORTS = {
    # published models
    "load_published": "published:load_published",
    "verify": "verification:verify",
    # models, data, checkpoints
    "ARCHS": "models:ARCHS",
    "build_model": "models:build_model",
    "load_cifar10": "data:load_cifar10",
    "synthetic_data": "data:synthetic_data",
    "calibration_batches": "data:calibration_batches",
    "CifarData": "data:CifarData",
    "Split": "data:Split",
    "save_checkpoint": "checkpoint:save_checkpoint",
    "load_checkpoint": "checkpoint:load_checkpoint",
    "Profile": "profiles:Profile",
    "get_profile": "profiles:get_profile",
    # training and measuring
    "TrainConfig": "train:TrainConfig",
    "fit": "train:fit",
    "evaluate": "train:evaluate",
    "count_macs": "metrics:count_macs",
    "count_params": "metrics:count_params",
    "size_mb": "metrics:size_mb",
    "measure_latency": "metrics:measure_latency",
    "paired_difference": "paired:paired_difference",
    # pruning
    "prune": "pruning:prune",
    "allocate": "budget:allocate",
    "prune_to_budget": "budget:prune_to_budget",
    "sensitivity_scan": "sensitivity:sensitivity_scan",
    "set_sparsity": "sparse:set_sparsity",
    # quantization
    "quantize_fixed_point": "quant.fixed_point:quantize_fixed_point",
    "FixedPointConfig": "quant.fixed_point:FixedPointConfig",
    "quantize_int8": "quant.int8:quantize_int8",
    "Int8Config": "quant.int8:Int8Config",
    "quantize_qat": "quant.qat:quantize_qat",
    "QATConfig": "quant.qat:QATConfig",
    "quantize_pt2e": "quant.pt2e:quantize_pt2e",
    "Pt2eConfig": "quant.pt2e:Pt2eConfig",
    "export_onnx": "quant.deploy:export_onnx",
    # the process
    "keep_freed_memory": "allocator:keep_freed_memory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import a verb's module when the verb is first used (PEP 562), and keep the verb here afterwards."""
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value  # the verb, also where importing its module just set the module under this name
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

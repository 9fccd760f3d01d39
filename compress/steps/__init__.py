"""Every cached step of the pipeline, shared by the notebooks, the CLI and `reproduce`.

    s = steps.Session.create("resnet18", "quick")
    baseline = steps.train_baseline(s)
    scan = steps.sensitivity(s, baseline)
    pruned = steps.prune_rounds(s, baseline, steps.configurations(s, scan))   # -> PruneResult (.best on validation)
    curve = steps.budget_sweep(s, baseline, scan)   # 2x .. 32x fewer MACs, with equal-budget and from-scratch controls
    steps.int8(s, baseline); steps.pruned_int8(s, pruned.model(), pruned.best, baseline=baseline)
    steps.combined(s, baseline, pruned.model(), pruned.best, steps.sparse(s, baseline))
    steps.save_results(s)

A step's cache key is everything that changes its result (architecture, profile, seed, data, upstream
weights), so a rerun reuses finished work, a changed setting recomputes only what depends on it, and an
interrupted step (no `done.json`) resumes from its saved training state or is recomputed, never trusted.
"""
from .budget import BudgetRun, BudgetSweep, budget_latency, budget_run, budget_sweep, scratch_run
from .baseline import baseline_folder, baseline_key, load_model, train_baseline
from .cache import HISTORY, MODEL, RECORD, STATE
from .trained import StepRef
from .importance import l1_ranking, sensitivity, taylor_data
from .pruning import PruneResult, configurations, distillation_effect, finetune_ratios, prune_rounds
from .quantization import combined, fixed_point, int8, pruned_int8, qat_config
from .sparsity import sparse
from .results import models_table, save_results, show
from .session import CACHE_ENV, Session, default_results_dir, parse_device, step_cache

__all__ = ["Session", "CACHE_ENV", "step_cache", "default_results_dir", "parse_device", "StepRef",
           "MODEL", "STATE", "RECORD", "HISTORY",
           "baseline_key", "baseline_folder", "train_baseline", "load_model",
           "l1_ranking", "sensitivity", "taylor_data",
           "PruneResult", "configurations", "prune_rounds", "distillation_effect", "finetune_ratios",
           "BudgetRun", "BudgetSweep", "budget_run", "budget_sweep", "budget_latency", "scratch_run",
           "fixed_point", "int8", "pruned_int8", "qat_config", "sparse", "combined",
           "show", "models_table", "save_results"]

"""Reports from results tables alone (never a model): figures and the generated tables and prose of README.md and docs/results.md."""

"""Reports from results tables alone (never a model): figures for the README and its summary tables."""

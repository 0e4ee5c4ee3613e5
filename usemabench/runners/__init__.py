"""Runners: train, evaluate, predict and sweep, all writing records (profiling lives in usemabench.profiler)."""

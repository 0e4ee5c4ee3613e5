"""Runners: train, evaluate, predict, profile and sweep, all writing records."""

"""Fixtures for the leaderboard tests: fabricated records and the outputs built from them."""

from record_factory import built_outputs, fabricated_records  # noqa: F401  (pytest fixtures)

"""Leaderboards: the record schema and store, aggregation, statistics and rendering."""

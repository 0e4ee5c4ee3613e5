"""Profiler: parameters, MACs/FLOPs, peak memory and latency of registered models; writes profile records."""

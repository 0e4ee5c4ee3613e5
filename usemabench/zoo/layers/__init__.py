"""Shared building blocks: conv blocks, SEMA and sibling token mixers, the selective scan, patch expanding, init."""

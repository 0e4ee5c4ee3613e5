"""Shared building blocks: convolution blocks, SEMA and sibling token mixers, the selective scan, patch expanding, init."""

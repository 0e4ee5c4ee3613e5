"""Shared building blocks: convolution blocks, SEMA and sibling token mixers, the selective scan, the Swin/ViT weight init."""

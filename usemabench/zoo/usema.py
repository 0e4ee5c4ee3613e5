"""USEMA: a UNet with SEMA (window softmax attention + global mean) blocks. Variants are being added."""

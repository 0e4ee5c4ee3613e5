"""The bottom layer: what every other layer shares (atomic I/O, content hashes, safe path names).

It imports nothing from the rest of the package, so any layer may import it.
"""

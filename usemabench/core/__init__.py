"""The bottom layer: what every other layer shares (atomic I/O, content hashes, safe path names).

It imports nothing from the rest of the package, so any layer may import it.
"""

__version__ = "0.1.0"  # the package version (pyproject.toml names the same); records carry it

"""The one exception of the datasets package: bad input explained in a single line."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file, split or spec that cannot be used; the message names the file or value and the problem.

    Raised `from None` where it replaces a library error (PIL, datasets, zipfile), so that a user sees one
    clear line instead of a traceback from deep inside an image decoder.
    """

"""Content hashes: the identity of configs, protocols, splits and data, shared by every layer."""

from __future__ import annotations

import hashlib
from typing import Any

from usemabench.core.io import canonical_json


def content_hash(payload: Any, length: int = 12) -> str:
    """Stable short hash of any JSON-serialisable value (sorted keys), for configs, protocols, splits."""
    digest = hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
    return digest[:length]

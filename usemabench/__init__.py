"""usemabench: a reproducible benchmark and model zoo for 2D medical image segmentation around USEMA."""

from typing import Any

from usemabench.core import __version__
from usemabench.core.threads import prefer_short_spin

prefer_short_spin()  # before the zoo imports torch: libgomp reads GOMP_SPINCOUNT once, when it loads

from usemabench.zoo.pretrained import list_pretrained  # noqa: E402
from usemabench.zoo.registry import get_model_info, list_models, register_model  # noqa: E402

__all__ = [
    "__version__", "create_model", "from_pretrained", "get_model_info", "list_models", "list_pretrained", "register_model",
]


def __getattr__(name: str) -> Any:
    """`create_model` and `from_pretrained` load weights, so they live in `usemabench.hub` (above the zoo); they are
    imported on first use so that importing the zoo alone never imports huggingface_hub."""
    if name in ("create_model", "from_pretrained"):
        from usemabench import hub

        return getattr(hub, name)
    raise AttributeError(f"module 'usemabench' has no attribute {name!r}")

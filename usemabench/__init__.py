"""usemabench: a reproducible benchmark and model zoo for 2D medical image segmentation around USEMA."""

__version__ = "0.1.0"

from usemabench.zoo.registry import create_model, get_model_info, list_models, register_model  # noqa: E402

__all__ = ["__version__", "create_model", "get_model_info", "list_models", "register_model"]

"""The model zoo: every model behind one registry (`create_model`, `list_models`, `register_model`)."""

from usemabench.zoo.registry import (
    FAMILIES,
    ModelInfo,
    count_parameters,
    create_model,
    get_model_info,
    import_model_module,
    list_models,
    parameter_count,
    register_model,
)

__all__ = [
    "FAMILIES",
    "ModelInfo",
    "count_parameters",
    "create_model",
    "get_model_info",
    "import_model_module",
    "list_models",
    "parameter_count",
    "register_model",
]

"""Imports every built-in model family so that their `@register_model` decorators run."""

from usemabench.zoo import usema  # noqa: F401

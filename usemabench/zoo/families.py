"""Imports every built-in model family so that their `@register_model` decorators run."""

from usemabench.zoo import usema  # noqa: F401
from usemabench.zoo import unet  # noqa: F401
from usemabench.zoo import transunet  # noqa: F401
from usemabench.zoo import unetr  # noqa: F401
from usemabench.zoo import swinunet  # noqa: F401
from usemabench.zoo import umamba  # noqa: F401
from usemabench.zoo import vmunet  # noqa: F401
from usemabench.zoo import swinumamba  # noqa: F401

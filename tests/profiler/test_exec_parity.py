"""Execution modes change how a model runs, not what it computes: channels_last and torch.compile outputs
equal eager ones, for one model of each family the CPU benchmark times (bench_exec.py).

Tolerances (inputs ~N(0, 1), 64 x 64): float32 outputs to rtol 1e-4 / atol 1e-4 (channels_last reorders the
convolutions' accumulation, Inductor fuses and reorders reductions: close, not bitwise). Gradients in float64
to torch's float64 defaults (rtol 1e-7): in float32 the weight gradients of a conv followed by InstanceNorm are
sums with heavy cancellation, and eager float32 itself is off float64 by up to 2x on the (mathematically zero)
gradients of biases before a norm, so float32 cannot tell a layout bug from rounding.
"""

from __future__ import annotations

import pytest
import torch

from usemabench.runners.execution import apply_exec, parse_exec
from usemabench.zoo import create_model

MODELS = ("usema_tiny", "nnunet_small", "umamba_bot_small")
# torch 2.14.1 on the CPU corrupts the heap (the process dies) in two places these models reach; skipped, not
# run, so the suite survives. Repro for the first: Conv2d(8, 16, 1, stride=2, bias=False) in channels_last,
# backward from a 1x8x64x64 channels_last input. The second: a compiled training step of umamba_bot_small.
CPU_CRASH = "torch 2.14.1 CPU: heap corruption (process dies) in"
CHANNELS_LAST_BACKWARD = {"usema_tiny": f"{CPU_CRASH} the channels_last backward of a 1x1 stride-2 conv"}


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(create_model(name, 1, 2))
    return models[0], models[1]


@pytest.mark.parametrize("name", MODELS)
def test_channels_last_forward_equals_eager(name: str) -> None:
    eager, other = _pair(name)
    prepared = apply_exec(other, parse_exec("channels_last"))
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(prepared.eval()(x), eager.eval()(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.skip(reason=CHANNELS_LAST_BACKWARD[name]))
        if name in CHANNELS_LAST_BACKWARD else name
        for name in MODELS
    ],
)
def test_channels_last_gradients_equal_eager_in_float64(name: str) -> None:
    eager, other = (model.double() for model in _pair(name))
    prepared = apply_exec(other, parse_exec("channels_last"))
    x = torch.randn(1, 1, 64, 64, dtype=torch.float64)
    for model in (eager, prepared):
        outputs = model.train()(x)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        sum(output.square().mean() for output in outputs).backward()
    for (key, expected), (_, got) in zip(eager.named_parameters(), other.named_parameters(), strict=True):
        torch.testing.assert_close(got.grad, expected.grad, msg=lambda text, key=key: f"{key}: {text}")


@pytest.mark.slow  # Inductor generates and compiles C++ per model: up to ~1 min each on a cold cache
@pytest.mark.parametrize("name", MODELS)
def test_compiled_forward_equals_eager(name: str) -> None:
    eager, other = _pair(name)
    prepared = apply_exec(other, parse_exec("compile"))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(prepared.eval()(x), eager.eval()(x), rtol=1e-4, atol=1e-4)

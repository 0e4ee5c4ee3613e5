"""Execution modes: how a model's calls run (eager, channels_last memory format, torch.compile), as data.

One name per mode, identical for every model, used by the profiler (`usemabench profile --exec`) and by
training (the protocol's `execution` field):

    eager                          the model as written (the default; what every older record ran)
    channels_last                  weights and inputs in NHWC memory format (cuDNN/oneDNN NHWC kernels)
    compile                        torch.compile, default mode (Inductor)
    compile-max-autotune           torch.compile(mode="max-autotune"): slower compile, autotuned kernels
    channels_last+compile          both; likewise channels_last+compile-max-autotune

A mode that cannot run is an error, never a silent eager run: torch.compile errors are not suppressed, and
`CompileWatch` counts the graphs Dynamo captured and the graph breaks (each a piece run eagerly between
compiled graphs), so a record can say whether the mode fell back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

EXEC_MODES = (
    "eager",
    "channels_last",
    "compile",
    "compile-max-autotune",
    "channels_last+compile",
    "channels_last+compile-max-autotune",
)
DEFAULT_EXEC = "eager"


@dataclass(frozen=True)
class ExecMode:
    """A parsed execution mode: NHWC memory format or not, and the torch.compile mode or None (eager)."""

    name: str
    channels_last: bool
    compile_mode: str | None  # "default" or "max-autotune"

    @property
    def is_eager(self) -> bool:
        return self.name == DEFAULT_EXEC


def parse_exec(name: str) -> ExecMode:
    """The ExecMode called `name` (one of EXEC_MODES); a ValueError naming the choices otherwise."""
    if name not in EXEC_MODES:
        raise ValueError(f"unknown execution mode {name!r}; choose one of {', '.join(EXEC_MODES)}")
    parts = name.split("+")
    compile_part = next((part for part in parts if part.startswith("compile")), None)
    compile_mode = None if compile_part is None else compile_part.removeprefix("compile").removeprefix("-") or "default"
    return ExecMode(name, "channels_last" in parts, compile_mode)


class ChannelsLastInput(nn.Module):
    """Runs `model` on its input converted to channels_last memory format (the weights were converted once)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x.contiguous(memory_format=torch.channels_last))


def apply_exec(
    model: nn.Module, mode: ExecMode, wrap: Callable[[nn.Module], nn.Module] | None = None
) -> nn.Module:
    """`model` prepared to run in `mode`; parameters are shared (an optimizer of `model` trains the result).

    channels_last converts `model`'s 4D weights in place (state_dict keys and values are unchanged); the
    returned module converts each input. `wrap` (e.g. DistributedDataParallel) goes between the two, so it
    sees the final weight layout and is itself compiled. compile wraps the result in torch.compile
    (compiled lazily, at the first call: time that call to see the compile cost).
    """
    prepared = model
    if mode.channels_last:
        model.to(memory_format=torch.channels_last)
        prepared = ChannelsLastInput(model)
    if wrap is not None:
        prepared = wrap(prepared)
    if mode.compile_mode is not None:
        prepared = torch.compile(prepared, mode=mode.compile_mode)
    return prepared


@dataclass
class CompileWatch:
    """Dynamo's counters over the calls made inside `watch()`: graphs captured and graph breaks with reasons."""

    graphs: int = 0
    graph_breaks: int = 0
    break_reasons: list[str] = field(default_factory=list)
    cache_hits: int = 0

    @contextlib.contextmanager
    def watch(self) -> Iterator[CompileWatch]:
        from torch._dynamo import config as dynamo_config
        from torch._dynamo.utils import counters

        counters.clear()
        previous = dynamo_config.suppress_errors
        dynamo_config.suppress_errors = False  # a compile error must surface, not run the frame eagerly
        try:
            yield self
        finally:
            dynamo_config.suppress_errors = previous
            breaks = counters["graph_break"]
            self.graphs = int(counters["stats"]["unique_graphs"])
            self.graph_breaks = int(sum(breaks.values()))
            self.break_reasons = sorted(str(reason).splitlines()[0][:200] for reason in breaks)
            self.cache_hits = int(counters["inductor"]["fxgraph_cache_hit"])

    @property
    def fell_back(self) -> bool:
        """Some of the model ran eagerly: a graph break, or no graph captured at all."""
        return self.graph_breaks > 0 or self.graphs == 0

    def summary(self) -> dict[str, Any]:
        return {
            "graphs": self.graphs, "graph_breaks": self.graph_breaks, "break_reasons": self.break_reasons,
            "fell_back": self.fell_back, "inductor_cache_hits": self.cache_hits,
        }


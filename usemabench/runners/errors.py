"""The runners' exception for bad input: the CLI prints it in one line, while a bug keeps its traceback."""

from __future__ import annotations

from pathlib import Path

from usemabench.zoo.registry import ModelInfo, get_model_info


class UsageError(ValueError):
    """An option or value the runners cannot use (model name or config, device, options that go together).

    The message names the value and says what to do. A ValueError, so callers that caught one still do.
    """


def registered_model(name: str) -> ModelInfo:
    """The registry entry of a name the user typed; the registry's KeyError (close matches in its message)
    becomes a UsageError, since a KeyError elsewhere is a bug."""
    try:
        return get_model_info(name)
    except KeyError as error:
        raise UsageError(error.args[0]) from None


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, saying where the same command picks it up again (the CLI prints it in one line).

    A KeyboardInterrupt, so that handlers which record a failed run (`except Exception`) let it pass.
    """

    def __init__(self, stage: str, checkpoint: Path) -> None:
        resume = f"resumes from {checkpoint}" if checkpoint.is_file() else f"starts it afresh (no checkpoint yet at {checkpoint})"
        super().__init__(f"interrupted during {stage}; the same command {resume}")

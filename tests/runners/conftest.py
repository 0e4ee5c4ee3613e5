"""Runner tests run single-threaded: tiny tensors gain nothing from threads, and on a shared machine
two threads per op cost ~10x in synchronisation waits."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""LLM hooks on the shared base model see only their own session's forward passes."""
from __future__ import annotations

import threading
import time

import torch

from backends.llm.hooks import capture


def test_capture_records_only_this_threads_forward_calls():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)  # a module every session's forward passes go through
    started, stop, calls = threading.Event(), threading.Event(), [0]

    def other_session() -> None:
        started.set()
        while not stop.is_set():
            layer(torch.zeros(3, 4))  # another visitor's batch: 3 rows
            calls[0] += 1

    thread = threading.Thread(target=other_session)
    thread.start()
    try:
        assert started.wait(5)
        with capture(layer) as captured:
            for _ in range(20):
                layer(torch.ones(2, 4))  # this session's batch: 2 rows
            seen = calls[0]
            while calls[0] < seen + 5:  # the other session's forwards run while this capture is open
                time.sleep(0.001)
    finally:
        stop.set()
        thread.join(5)
    assert len(captured.tensors) == 20
    assert all(t.shape == (2, 4) for t in captured.tensors), "another session's activations were recorded"
    with capture(layer) as nested, capture(layer, what="input") as inputs:
        layer(torch.ones(1, 4))
    assert len(nested.tensors) == len(inputs.tensors) == 1

"""Sandbox for model-written Python: correct code passes; loops, memory bombs, network use, writes
outside the working directory, process spawning and early exits all fail."""
from __future__ import annotations

import os
import tempfile
import uuid

import pytest

from backends.llm import sandbox
from backends.llm.sandbox import SandboxResult, extract_code, run_python

ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(params=["with_namespace", "python_guard_only"])
def guard(request, monkeypatch):
    """Run network/file tests both with ``unshare -n`` (when available) and with the Python guard alone."""
    if request.param == "python_guard_only":
        monkeypatch.setattr(sandbox, "_unshare_prefix", lambda: ())
    return request.param


def _passes(code: str, tests: str = ADD_TESTS, **kwargs) -> SandboxResult:
    return run_python(code, tests, **kwargs)


def test_correct_code_passes_wrong_code_fails():
    assert _passes(ADD) == SandboxResult(True, "all tests passed")
    wrong = _passes("def add(a, b):\n    return a - b\n")
    assert not wrong.passed and "assert" in wrong.reason


def test_chat_answer_with_fences_and_prose():
    answer = f"Here's the function:\n\n```python\n{ADD}```\n\nExample usage:\n```python\nprint(add(5, 5))\n```"
    assert _passes(answer).passed


def test_syntax_error_and_missing_function():
    result = _passes("def add(a, b) return a + b")
    assert not result.passed and "SyntaxError" in result.reason
    result = _passes("def plus(a, b):\n    return a + b\n")
    assert not result.passed and "NameError" in result.reason


def test_infinite_loop_times_out():
    result = _passes("def add(a, b):\n    while True:\n        pass\n", timeout_s=1.0)
    assert not result.passed and "timeout" in result.reason


def test_sleeping_code_hits_the_wall_clock_limit():
    result = _passes("import time\ntime.sleep(30)\n" + ADD, timeout_s=1.0)
    assert not result.passed and "timeout" in result.reason


@pytest.mark.parametrize("bomb", ["blob = bytearray(2 * 1024 ** 3)", "blob = [0] * (10 ** 9)", "blob = 'x' * (2 ** 31)"])
def test_memory_bomb_fails(bomb):
    result = _passes(f"{bomb}\n{ADD}", memory_mb=128)
    assert not result.passed and "memory" in result.reason


@pytest.mark.parametrize("network_code", [
    "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', 9))",
    "import socket\nsocket.create_connection(('example.com', 80), timeout=1)",
    "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)",
    "import _socket\n_socket.socket()",
])
def test_network_use_fails(guard, network_code):
    result = _passes(f"{network_code}\n{ADD}")
    assert not result.passed


def test_write_outside_working_directory_fails(guard):
    target = os.path.join(tempfile.gettempdir(), f"sandbox_escape_{uuid.uuid4().hex}.txt")
    for code in (f"open({target!r}, 'w').write('x')", f"import os\nos.open({target!r}, os.O_CREAT | os.O_WRONLY)",
                 f"import pathlib\npathlib.Path({target!r}).write_text('x')",
                 f"import io\nio.FileIO({target!r}, 'w').write(b'x')", f"import _io\n_io.open({target!r}, 'w')"):
        result = _passes(f"{code}\n{ADD}")
        assert not result.passed and "outside" in result.reason
        assert not os.path.exists(target)


def test_writes_inside_are_size_limited_and_cleaned_up():
    before = {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("llm_sandbox_")}
    assert _passes(f"open('notes.txt', 'w').write('small')\n{ADD}").passed
    big = _passes(f"open('big.txt', 'w').write('x' * (4 * 1024 * 1024))\n{ADD}")
    assert not big.passed and "too large" in big.reason.lower()
    flood = _passes(f"print('x' * (4 * 1024 * 1024))\n{ADD}")
    assert not flood.passed
    after = {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("llm_sandbox_")}
    assert after == before


@pytest.mark.parametrize("spawn", [
    "import os\nos.system('echo hi')", "import subprocess\nsubprocess.run(['true'])", "import os\nos.fork()",
    "import ctypes",
])
def test_process_spawning_is_blocked(spawn):
    assert not _passes(f"{spawn}\n{ADD}").passed


def test_early_exit_cannot_fake_success():
    for code in ("import os\nos._exit(0)", "import sys\nsys.exit(0)", "raise SystemExit(0)"):
        result = _passes(f"{ADD}\n{code}\n")
        assert not result.passed, code


def test_environment_is_empty():
    check = "import os\nassert 'PATH' not in os.environ and 'HOME' not in os.environ\nassert add(1, 1) == 2"
    assert _passes(ADD, check).passed


def test_extract_code_variants():
    assert extract_code(f"```python\n{ADD}```") == ADD.strip()
    # unclosed fence (token limit) with a truncated example line
    assert extract_code(f"Sure!\n```python\n{ADD}\nprint(add(1,") == ADD.strip()
    # bare code followed by prose
    assert extract_code(f"Here it is:\n{ADD}\nThis adds two numbers.") == ADD.strip()
    # the function block wins over a usage-only block
    assert extract_code(f"```python\nx = 1\n```\n```python\n{ADD}```") == ADD.strip()
    # bare code that compiles is kept whole, including top-level statements before the function
    assert extract_code(f"x = 1\n{ADD}").startswith("x = 1")


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="tests"):
        run_python(ADD, "   ")
    with pytest.raises(ValueError, match="timeout"):
        run_python(ADD, ADD_TESTS, timeout_s=0)
    with pytest.raises(ValueError, match="memory"):
        run_python(ADD, ADD_TESTS, memory_mb=1)
    assert not run_python("", ADD_TESTS).passed


def test_resource_limits_are_in_force():
    check = ("import resource\n"
             "assert resource.getrlimit(resource.RLIMIT_AS)[0] == 128 * 1024 * 1024\n"
             "assert resource.getrlimit(resource.RLIMIT_CPU)[0] == 2\n"
             "assert resource.getrlimit(resource.RLIMIT_NPROC)[0] == 0\n"
             "assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] > 0")
    assert _passes(ADD, check, memory_mb=128, timeout_s=1.5).passed

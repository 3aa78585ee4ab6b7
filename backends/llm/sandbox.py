"""Run untrusted, model-generated Python in a locked-down subprocess.

Design (best effort, defence in depth; it is NOT a security boundary against a determined attacker,
it is sized for the code a 135M-1.5B chat model writes for a skill probe):

* a fresh interpreter ``python -I -S`` (isolated: no user site, no ``PYTHON*`` variables, no
  ``site``/``sitecustomize``), an EMPTY environment, stdin from /dev/null, a private temporary working
  directory that is deleted afterwards, its own session (process group) so a timeout kills every child;
* resource limits set by the child's first statements, before any untrusted code (not in a
  ``preexec_fn``, which can deadlock in a threaded parent such as the Gradio server): address space
  (``RLIMIT_AS``, ``memory_mb``), CPU seconds (``RLIMIT_CPU``), no new processes (``RLIMIT_NPROC`` = 0;
  ignored by the kernel for root, so the prelude also removes ``fork``/``exec``/``subprocess``), file
  size (``RLIMIT_FSIZE``, also caps stdout/stderr, which go to files), open files (``RLIMIT_NOFILE``),
  no core dumps; plus a wall-clock timeout enforced by the parent, which kills the whole session;
* a prelude run before the code: replaces ``socket.socket``/``_socket.socket`` and friends with a
  function that raises (no network), refuses to open files for writing outside the working
  directory, and removes process-spawning functions. A Python-level guard can be undone by code that
  digs deep enough (``ctypes``, frame introspection); the resource limits still hold;
* if ``unshare -n`` works here (root in a Linux container with user namespaces), the child also runs
  in an empty network namespace (checked once, never required);
* success needs exit status 0 AND a random per-run token printed by the harness after the tests
  ran, so code that calls ``os._exit(0)`` early cannot pass.
"""
from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MAX_CODE_CHARS = 20_000
OUTPUT_LIMIT_BYTES = 1 << 20  # RLIMIT_FSIZE: 1 MiB per file, stdout/stderr included
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_DEFINES_RE = re.compile(r"^\s*(def|class) ", re.MULTILINE)
_PYTHON_LANGS = ("", "python", "py", "python3")
_CODE_START_RE = re.compile(r"^(def |class |import |from |@|async def )", re.MULTILINE)

_PRELUDE = r'''
import builtins as _b, io as _io, os as _os, posix as _posix, sys as _sys
_real_unlink = _posix.unlink
def _no_network(*_a, **_k):
    raise PermissionError("network access is disabled in the sandbox")
import socket as _socket_mod, _socket as _csocket
class _BlockedPySocket(_socket_mod.socket):
    def __init__(self, *_a, **_k):
        _no_network()
class _BlockedCSocket(_csocket.socket):
    def __init__(self, *_a, **_k):
        _no_network()
_socket_mod.socket = _BlockedPySocket
_csocket.socket = _BlockedCSocket
for _m in (_socket_mod, _csocket):
    for _n in ("socketpair", "create_connection", "create_server", "getaddrinfo", "gethostbyname",
               "gethostbyname_ex", "gethostbyaddr", "fromfd"):
        if hasattr(_m, _n):
            setattr(_m, _n, _no_network)
def _no_process(*_a, **_k):
    raise PermissionError("starting processes is disabled in the sandbox")
_SPAWN = ("fork", "forkpty", "system", "popen", "execv", "execve", "execvp", "execvpe", "execl", "execle",
          "execlp", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp",
          "kill", "killpg")
for _m in (_os, _posix):
    for _n in _SPAWN:
        if hasattr(_m, _n):
            setattr(_m, _n, _no_process)
_sys.modules["subprocess"] = None
_sys.modules["multiprocessing"] = None
_sys.modules["ctypes"] = None
_ROOT = _os.path.realpath(_os.getcwd())
def _check_inside(path):
    real = _os.path.realpath(_os.fspath(path))
    if real != _ROOT and not real.startswith(_ROOT + _os.sep):
        raise PermissionError(f"writing outside the sandbox directory is disabled: {path!r}")
_real_open = _io.open
def _guarded_open(file, mode="r", *args, **kwargs):
    if not isinstance(file, int) and any(c in mode for c in "wax+"):
        _check_inside(file)
    return _real_open(file, mode, *args, **kwargs)
class _GuardedFileIO(_io.FileIO):
    def __init__(self, file, mode="r", *args, **kwargs):
        if not isinstance(file, int) and any(c in mode for c in "wax+"):
            _check_inside(file)
        super().__init__(file, mode, *args, **kwargs)
import _io as _cio
for _m in (_io, _cio):
    _m.open = _guarded_open
    _m.FileIO = _GuardedFileIO
_b.open = _guarded_open
_real_os_open = _os.open
def _guarded_os_open(path, flags, *args, **kwargs):
    if flags & (_os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_APPEND | _os.O_TRUNC):
        _check_inside(path)
    return _real_os_open(path, flags, *args, **kwargs)
def _no_fs_change(*_a, **_k):
    raise PermissionError("changing the file system is disabled in the sandbox")
_FS_CHANGE = ("remove", "unlink", "rmdir", "rename", "replace", "removedirs", "chmod", "chown", "symlink",
              "link", "truncate", "mkdir", "makedirs", "mkfifo", "mknod")
for _m in (_os, _posix):
    _m.open = _guarded_os_open
    for _n in _FS_CHANGE:
        if hasattr(_m, _n):
            setattr(_m, _n, _no_fs_change)
'''

_HARNESS = r'''
_token = _real_open("token.txt").read()
_real_unlink("token.txt")
_ns = {"__name__": "__sandbox__", "__builtins__": _b}
_src = _real_open("solution.py").read()
try:
    _code = compile(_src, "solution.py", "exec")
except SyntaxError as _e:
    print(f"SyntaxError: {_e.msg} (line {_e.lineno})", file=_sys.stderr)
    _sys.exit(3)
_tests = compile(_real_open("tests.py").read(), "tests.py", "exec")
exec(_code, _ns)
exec(_tests, _ns)
_sys.stdout.flush()
_os.write(1, ("\n" + _token + "\n").encode())
'''


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one sandboxed run: ``passed`` and a short human-readable ``reason``."""

    passed: bool
    reason: str


def extract_code(answer: str) -> str:
    """The Python program in a chat answer.

    Prefers fenced blocks (```python ... ```; an unclosed fence, as left by a token limit, runs to the
    end): the first block that defines something (``def``/``class``), else the first block. Without
    fences, takes the whole answer if it compiles, else the text from the first line that starts
    like code. The result is then cut to its longest prefix of whole lines that compiles, so trailing
    prose or a truncated example does not spoil a correct function.
    """
    blocks = [(lang.lower(), body) for lang, body in _FENCE_RE.findall(answer)]
    if blocks:
        python_blocks = [b for lang, b in blocks if lang in _PYTHON_LANGS] or [b for _, b in blocks]
        defining = [b for b in python_blocks if _DEFINES_RE.search(b)]
        code = (defining or python_blocks)[0]
    elif _compiles(answer):
        code = answer
    else:
        match = _CODE_START_RE.search(answer)
        code = answer[match.start():] if match else answer
    return _longest_compiling_prefix(code.strip("\n"))


def first_program_closed(answer: str) -> bool:
    """Whether :func:`extract_code` of ``answer`` and of every continuation of it is already decided: a closed
    fenced Python block that defines something (the first such block is taken, whatever follows)."""
    return any(block.group(0).endswith("```") and block.group(1).lower() in _PYTHON_LANGS
               and _DEFINES_RE.search(block.group(2)) for block in _FENCE_RE.finditer(answer))


def _compiles(code: str) -> bool:
    try:
        compile(code, "solution.py", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _longest_compiling_prefix(code: str) -> str:
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if _compiles(candidate):
            return candidate.rstrip()
    return code


@functools.lru_cache(maxsize=1)
def _unshare_prefix() -> tuple[str, ...]:
    """``("unshare", "-n")`` when an empty network namespace can be made here, else ``()``."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    try:
        probe = subprocess.run([unshare, "-n", "true"], capture_output=True, timeout=5, env={})
    except (OSError, subprocess.SubprocessError):
        return ()
    return (unshare, "-n") if probe.returncode == 0 else ()


def _limits_prelude(memory_mb: int, cpu_s: int) -> str:
    """First lines of the child's program: resource limits, set before any untrusted code runs.

    Set in the child itself rather than in a ``preexec_fn``: ``preexec_fn`` is not safe in a threaded
    parent (the Gradio server), where the forked child can deadlock before ``exec``.
    """
    memory = memory_mb * 1024 * 1024
    limits = (  # (name, soft, hard)
        ("RLIMIT_AS", memory, memory), ("RLIMIT_DATA", memory, memory),
        # SIGXCPU at the soft limit; the kernel sends SIGKILL at the hard one, so keep a gap.
        ("RLIMIT_CPU", cpu_s, cpu_s + 2),
        ("RLIMIT_FSIZE", OUTPUT_LIMIT_BYTES, OUTPUT_LIMIT_BYTES), ("RLIMIT_NOFILE", 64, 64),
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_NPROC", 0, 0),  # no new processes or threads (not enforced by the kernel for root)
    )
    return (
        "import resource as _resource\n"
        f"for _name, _soft, _hard in {limits!r}:\n"
        "    _resource.setrlimit(getattr(_resource, _name), (_soft, _hard))\n"
    )


def run_python(code: str, tests: str, timeout_s: float = 3.0, memory_mb: int = 256) -> SandboxResult:
    """Run ``code`` then the assert statements ``tests`` in a sandboxed interpreter.

    ``code`` may be a whole chat answer: fenced blocks are extracted with :func:`extract_code`.
    Passed only if every test ran without an exception within ``timeout_s`` seconds (wall clock)
    and ``memory_mb`` MiB of address space.
    """
    if not isinstance(code, str) or not isinstance(tests, str):
        raise ValueError("code and tests must be strings")
    if not 0.1 <= timeout_s <= 60:
        raise ValueError(f"timeout_s must be in [0.1, 60], got {timeout_s}")
    if not 64 <= memory_mb <= 8192:
        raise ValueError(f"memory_mb must be in [64, 8192], got {memory_mb}")
    if not tests.strip():
        raise ValueError("tests are empty: give at least one assert statement")
    if len(code) > MAX_CODE_CHARS:
        return SandboxResult(False, f"answer longer than {MAX_CODE_CHARS} characters")
    program = extract_code(code)
    if not program.strip():
        return SandboxResult(False, "no code found in the answer")
    token = secrets.token_hex(16)
    # The wall-clock timeout is the limit that normally fires; the CPU limit is a backstop one second
    # later, so a busy loop on a slow machine is still reported as a timeout.
    cpu_s = int(timeout_s) + 1
    with tempfile.TemporaryDirectory(prefix="llm_sandbox_") as workdir:
        for name, text in (("solution.py", program), ("tests.py", tests), ("token.txt", token),
                           ("harness.py", _limits_prelude(memory_mb, cpu_s) + _PRELUDE + _HARNESS)):
            with open(os.path.join(workdir, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        stdout_path = os.path.join(workdir, "stdout.txt")
        stderr_path = os.path.join(workdir, "stderr.txt")
        command = [*_unshare_prefix(), sys.executable, "-I", "-S", "-B", "harness.py"]
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                command, cwd=workdir, env={}, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, close_fds=True,
            )
            try:
                returncode = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return SandboxResult(False, f"timeout: ran longer than {timeout_s:g} s")
            finally:
                _kill_group(process)
        stdout = _tail(stdout_path)
        stderr = _tail(stderr_path)
    if returncode == 0 and stdout.rstrip().endswith(token):
        return SandboxResult(True, "all tests passed")
    return SandboxResult(False, _failure_reason(returncode, stderr, memory_mb, timeout_s))


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _tail(path: str, limit: int = 4000) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - limit))
        return handle.read().decode("utf-8", errors="replace")


def _failure_reason(returncode: int, stderr: str, memory_mb: int, timeout_s: float) -> str:
    import signal

    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return f"timeout: CPU limit of {timeout_s:g} s exceeded"
        if sig == signal.SIGXFSZ:
            return f"output limit of {OUTPUT_LIMIT_BYTES} bytes exceeded"
        if sig == signal.SIGKILL:
            return f"killed by signal SIGKILL (CPU time limit of {timeout_s:g} s or memory limit of {memory_mb} MiB)"
        if sig == signal.SIGSEGV:
            return f"killed by signal SIGSEGV (likely memory limit of {memory_mb} MiB)"
        return f"killed by signal {signal.Signals(sig).name}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    if last.startswith("MemoryError"):
        return f"memory limit of {memory_mb} MiB exceeded"
    if last.startswith("AssertionError"):
        failed = next((line.strip() for line in reversed(lines) if line.strip().startswith("assert ")), "")
        return f"assertion failed: {failed}" if failed else "assertion failed"
    if last:
        return last[:300]
    return f"exited with status {returncode} before the tests finished"

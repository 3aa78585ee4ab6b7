"""Reliability (issue 13): the real app under many visitors, bad input and cancels.

Starts ``app.py`` as a subprocess (embedded offline presets, CPU) and drives it only through
``gradio_client``, each visitor a :class:`gradio_client.Client` of its own (its own session):

  reliability.sessions                 concurrent sessions across the GAN, diffusion and LLM tabs, each
                                       unlearning its own concept or skill, then generating and exporting
  reliability.cross_session_leaks      sessions whose edited samples or exported tensors differ from a solo
                                       run of the same request in a fresh session (another visitor's edit leaked),
                                       among ``reliability.sessions_compared`` (both runs finished; a failed
                                       one counts as failed requests, not as a leak)
  reliability.failed_requests          requests of those sessions that raised or showed an error
  reliability.peak_rss_gb              the server's peak resident memory (VmHWM), models included
  reliability.bad_inputs               cases of the bad-input corpus (:func:`bad_input_cases`)
  reliability.bad_inputs_clear_pct     of those, answered with a clear message (no traceback, no "Internal
                                       error", no bare "Error") and, where the input is wrong, an error
  reliability.server_alive_after       1 when the server still answers and generates after all of it
  reliability.cancel_trials            seeded random-step cancels, 10 per registered method, in-process on the
                                       tiny presets (``tests.cancel_anywhere``, the contract tests' helper)
  reliability.cancel_base_identical_pct  of those, the base weights hash bit-identical and the previous edit intact

``BENCH_RELIABILITY_SESSIONS`` sets the session count (default 16), ``BENCH_THREADS`` the server's torch
threads (default 1). Seconds are not measured here.
"""
from __future__ import annotations

import hashlib
import html
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 300
CANCEL_TRIALS = 10
CLIENT_TIMEOUT = 600  # seconds a request may wait on a busy 2-core server before it counts as failed
#: What a visitor must never see: a stack trace, an unexplained internal error, gradio's generic failure.
UNCLEAR = ("Traceback", "Internal error", 'File "', "has raised an exception", "verbose error reporting")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``python app.py`` on a free port (context manager); its log goes to ``<tmp>/server.log``."""

    def __init__(self, workdir: Path):
        self.port, self.workdir = _free_port(), workdir
        self.url = f"http://127.0.0.1:{self.port}/"
        threads = os.environ.get("BENCH_THREADS", "1")
        self.env = dict(os.environ, PORT=str(self.port), UNLEARNING_LAB_DEVICE="cpu", OMP_NUM_THREADS=threads,
                        MKL_NUM_THREADS=threads, UNLEARNING_LAB_EXPORT_DIR=str(workdir / "exports"),
                        GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")

    def __enter__(self) -> "AppServer":
        self.log = open(self.workdir / "server.log", "w")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + START_TIMEOUT
        while not self.alive():
            if self.proc.poll() is not None or time.time() > deadline:
                self.__exit__()
                raise RuntimeError(f"the app did not start: {(self.workdir / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def peak_rss_gb(self) -> float:
        """The server process's peak resident set (VmHWM), in GiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
        return kb / 2**20


class Visitor:
    """One browser tab's worth of API: a client with its own session, the app's events by API name
    (``gan_run``...) and their inputs by element id (``gan-text_to_unlearn-steps``...)."""

    def __init__(self, url: str, downloads: Path):
        from gradio_client import Client

        self.client = Client(url, verbose=False, download_files=str(downloads), analytics_enabled=False,
                             httpx_kwargs={"timeout": CLIENT_TIMEOUT})
        config = self.client.config
        self.props = {c["id"]: c.get("props", {}) for c in config["components"]}
        self.inputs = {d["api_name"]: d["inputs"] for d in config["dependencies"] if d.get("api_name")}

    def args(self, api: str, values: dict[str, Any]) -> list[Any]:
        """Positional inputs of an event: ``values`` by element id, every other input its default."""
        ids = self.inputs[api]
        known = {self.props[i].get("elem_id") for i in ids}
        unknown = set(values) - known
        if unknown:
            raise KeyError(f"{api} has no input(s) {sorted(unknown)}")
        return [values.get(self.props[i].get("elem_id"), self.props[i].get("value")) for i in ids]

    def call(self, api: str, values: dict[str, Any] | None = None) -> Any:
        return self.client.predict(*self.args(api, values or {}), api_name=f"/{api}")

    def submit(self, api: str, values: dict[str, Any] | None = None) -> Any:
        return self.client.submit(*self.args(api, values or {}), api_name=f"/{api}")

    def close(self) -> None:
        self.client.close()


def text_of(value: Any) -> str:
    """The visible text of an HTML status line (or any output)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", str(value or ""))).strip()


def is_error(value: Any) -> bool:
    return "ul-error" in str(value)


# sessions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """One visitor's unlearning request: a method of a tab with settings over its smoke config."""

    backend: str
    method: str
    settings: tuple[tuple[str, Any], ...] = ()
    picks: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        what = dict(self.settings).get("concept") or dict(self.settings).get("forget_skill")
        return f"{self.backend}/{self.method}/{what}"


GENERATE = {  # the cheapest honest gallery of each tab
    "gan": {"count": 4},
    "diffusion": {"concept_prompts": "a face wearing glasses", "neighbour_prompts": "a face with a beard",
                  "unrelated_prompts": "", "seeds_per_prompt": 2, "steps": 2},
    "llm": {"per_skill": 1, "max_new_tokens": 8},
}


def _llm(method: str, forget: str, retain: str) -> Request:
    return Request("llm", method, (("forget_skill", forget), ("retain_skills", (retain,)), ("eval_items", 1)))


#: The diffusion methods first check that the base draws the concept, on eval_prompts x eval_seeds images;
#: the smoke config's single image misses a hat too often, so four.
DIFFUSION_CHECK = (("eval_seeds", 4),)

#: 16 visitors, each a different (tab, method, concept or skill); more sessions cycle through them.
REQUESTS: tuple[Request, ...] = (
    *(Request("gan", "text_to_unlearn", (("concept", c),)) for c in ("glasses", "hat", "smile", "beard", "blond")),
    Request("gan", "adapt_then_unlearn", (("concept", "glasses"),), picks=(0, 1)),
    *(Request("diffusion", "uce", (("concept", c), *DIFFUSION_CHECK)) for c in ("glasses", "hat", "beard", "smile")),
    Request("diffusion", "esd_x", (("concept", "frown"), *DIFFUSION_CHECK)),
    Request("diffusion", "esd_kv", (("concept", "blond hair"), *DIFFUSION_CHECK)),
    _llm("key_space_detection", "python_coding", "antonyms"),
    _llm("neuron_adjust", "story_writing", "factual_qa"),
    _llm("key_space_detection", "factual_qa", "story_writing"),
    _llm("neuron_adjust", "antonyms", "python_coding"),
)


def _ui_value(spec: Any, value: Any) -> Any:
    return "\n".join(value) if spec.widget == "lines" else value


def method_inputs(request: Request) -> dict[str, Any]:
    """The run event's inputs by element id: the method, its smoke settings plus the request's, picks, gallery."""
    from backends import registry
    from backends.config import field_specs
    from tests.cancel_anywhere import smoke_values

    registry.load_all()
    b, m = request.backend, request.method
    specs = {s.name: s for s in field_specs(registry.method(b, m).config) if s.widget != "picked"}
    values = {k: v for k, v in smoke_values(registry.method(b, m).config).items() if k in specs}
    values.update(dict(request.settings))
    inputs = {f"{b}-{m}-{k}": _ui_value(specs[k], v) for k, v in values.items()}
    inputs[f"{b}-method"] = m
    if request.picks:
        inputs[f"{b}-pick"] = list(request.picks)
    return inputs | generate_inputs(b)


def generate_inputs(backend: str) -> dict[str, Any]:
    return {f"{backend}-gen-{k}": v for k, v in GENERATE[backend].items()}


def _digest(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a if isinstance(a, bytes) else str(a).encode())
    return h.hexdigest()


def _path(item: Any) -> str:
    """A gallery item's local file, whatever shape the client gives it."""
    while isinstance(item, (dict, list, tuple)):
        item = (item.get("image") or item.get("path") or item.get("value")) if isinstance(item, dict) else item[0]
    return str(item)


def edited_outputs(backend: str, shown: Any) -> str:
    """A fingerprint of the edited half of a generation: the 'after' images' pixels, or the edited answers."""
    import numpy as np
    from PIL import Image

    if backend == "llm":
        rows = shown.get("data", []) if isinstance(shown, dict) else shown
        return _digest(*[row[-1] for row in rows])
    after = [item for item in shown if "after" in str(item.get("caption") if isinstance(item, dict) else item[1])]
    if not after:
        raise RuntimeError("the gallery shows no edited samples")
    return _digest(*[np.asarray(Image.open(_path(item)).convert("RGB")).tobytes() for item in after])


def exported_tensors(files: Any) -> str:
    from safetensors.numpy import load_file

    paths = [_path(f) for f in (files or [])]
    weights = [p for p in paths if p.endswith(".safetensors")]
    if len(weights) != 1:
        raise RuntimeError(f"export gave {paths}")
    tensors = load_file(weights[0])
    return _digest(*[k.encode() + tensors[k].tobytes() for k in sorted(tensors)])


@dataclass
class SessionResult:
    request: Request
    samples: str = ""
    tensors: str = ""
    failures: list[str] = field(default_factory=list)


def visit(url: str, downloads: Path, request: Request) -> SessionResult:
    """One visitor: generate, unlearn, generate again (before/after), export. Records every failed request."""
    result, b = SessionResult(request), request.backend
    try:
        visitor = Visitor(url, downloads)
    except Exception as exc:  # noqa: BLE001 - the page did not even open
        result.failures.append(f"{request.label} open: {type(exc).__name__}: {exc}")
        return result
    try:
        def step(name: str, fn: Callable[[], Any], message: Callable[[Any], Any]) -> Any:
            try:
                out = fn()
            except Exception as exc:  # noqa: BLE001 - a failed request is what we count
                result.failures.append(f"{request.label} {name}: {type(exc).__name__}: {exc}")
                return None
            if is_error(message(out)):
                result.failures.append(f"{request.label} {name}: {text_of(message(out))}")
            return out

        step("generate", lambda: visitor.call(f"{b}_generate", generate_inputs(b)), lambda o: o[0])
        run = step("unlearn", lambda: visitor.call(f"{b}_run", method_inputs(request)), lambda o: o[0])
        if run is not None and "done" not in text_of(run[0]):
            result.failures.append(f"{request.label} unlearn ended: {text_of(run[0])}")
        shown = step("generate after", lambda: visitor.call(f"{b}_generate", generate_inputs(b)), lambda o: o[0])
        files = step("export", lambda: visitor.call(f"{b}_export"), lambda o: o[1])
        try:
            result.samples = edited_outputs(b, shown[2]) if shown else ""
            result.tensors = exported_tensors(files[0]) if files else ""
        except Exception as exc:  # noqa: BLE001
            result.failures.append(f"{request.label} reading results: {type(exc).__name__}: {exc}")
    finally:
        visitor.close()
    return result


def sessions_under_load(url: str, workdir: Path, count: int) -> dict[str, Any]:
    """``count`` visitors at once, then each request again alone in a fresh session; compare."""
    requests = [REQUESTS[i % len(REQUESTS)] for i in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        together = list(pool.map(lambda ir: visit(url, workdir / f"s{ir[0]}", ir[1]), enumerate(requests)))
    solo = {r: visit(url, workdir / f"solo{i}", r) for i, r in enumerate(dict.fromkeys(requests))}
    failures = [f for r in [*together, *solo.values()] for f in r.failures]
    def complete(r: SessionResult) -> bool:
        return bool(r.samples and r.tensors)

    compared = [r for r in together if complete(r) and complete(solo[r.request])]  # a failed one is a failure
    leaks = [r.request.label for r in compared
             if (r.samples, r.tensors) != (solo[r.request].samples, solo[r.request].tensors)]
    distinct = len({(r.samples, r.tensors) for r in solo.values() if complete(r)})
    return {"sessions": count, "failures": failures, "leaks": leaks, "compared": len(compared),
            "distinct_edits": distinct, "requests": len(solo)}


# bad input ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """A bad input: ``send(visitor)`` makes the request and returns the message the visitor sees."""

    name: str
    send: Callable[[Visitor], str]
    wrong: bool = True  # the input is wrong, so the message must be an error (else any clear answer)


def _message(index: int | None) -> Callable[[Any], str]:
    def pick(out: Any) -> str:
        return str(out if index is None else out[index])
    return pick


MESSAGE = {"generate": 0, "run": 0, "attack": 0, "export": 1, "chat": 2, "map": 1, "reset": 1, "load": None}
HUGE = "glasses " * 12_800  # 100 kB


def _ask(api: str, values: dict[str, Any] | None = None, *, generate_first: str | None = None) -> Callable:
    def send(visitor: Visitor) -> str:
        if generate_first:
            visitor.call(f"{generate_first}_generate", generate_inputs(generate_first))
        return _message(MESSAGE[api.split("_", 1)[1]])(visitor.call(api, values))
    return send


def _run(request: Request, **overrides: Any) -> Callable:
    """An unlearning request with some inputs (by element id) replaced, after a gallery exists."""
    values = method_inputs(request) | overrides
    return _ask(f"{request.backend}_run", values, generate_first=request.backend)


def _two_runs_at_once(visitor: Visitor) -> str:
    request = Request("gan", "text_to_unlearn", (("steps", 40),))
    visitor.call("gan_generate", generate_inputs("gan"))
    first = visitor.submit("gan_run", method_inputs(request))
    deadline = time.time() + 120
    while not any("unlearning" in text_of(o[0]) or "evaluating" in text_of(o[0]) for o in first.outputs()):
        if first.done() or time.time() > deadline:
            break
        time.sleep(0.1)
    second = visitor.call("gan_run", method_inputs(request))[0]
    visitor.call("gan_cancel")
    first.result(timeout=300)
    return second


def _closed_tab_mid_job(url: str, downloads: Path) -> Callable:
    """A visitor starts a run and disconnects (the client and its heartbeat close); the server must go on
    serving: another visitor's generate and run still work, and the message is theirs."""
    def send(visitor: Visitor) -> str:
        leaving = Visitor(url, downloads)
        leaving.call("diffusion_generate", generate_inputs("diffusion"))
        leaving.submit("diffusion_run", method_inputs(Request("diffusion", "esd_x", (("iterations", 30),))))
        time.sleep(2)
        leaving.close()
        visitor.call("gan_generate", generate_inputs("gan"))
        return visitor.call("gan_run", method_inputs(REQUESTS[0]))[0]
    return send


def bad_input_cases(url: str, downloads: Path) -> list[Case]:
    """At least 60 bad inputs across the three tabs (see the issue's list)."""
    t2u, uce = REQUESTS[0], REQUESTS[6]
    ksd = _llm("key_space_detection", "python_coding", "antonyms")
    atu, fewshot = REQUESTS[5], Request("diffusion", "fewshot_te", (("concept", "glasses"),), picks=(0, 1))
    cases = [
        # empty
        Case("gan concept empty", _run(t2u, **{"gan-text_to_unlearn-concept": ""})),
        Case("gan concept spaces", _run(t2u, **{"gan-text_to_unlearn-concept": "   \t "})),
        Case("diffusion concept empty", _run(uce, **{"diffusion-uce-concept": ""})),
        Case("diffusion no prompts at all", _ask("diffusion_generate", {
            "diffusion-gen-concept_prompts": "", "diffusion-gen-neighbour_prompts": "",
            "diffusion-gen-unrelated_prompts": "", "diffusion-gen-user_prompts": ""})),
        Case("llm chat empty", _ask("llm_chat", {"llm-chat-in": ""})),
        Case("llm custom skill without prompts", _run(ksd, **{"llm-key_space_detection-forget_skill": "custom",
                                                             "llm-key_space_detection-forget_prompts": ""})),
        Case("gan picked method with no pick", _run(atu, **{"gan-pick": []})),
        Case("gan method none", _run(t2u, **{"gan-method": None})),
        # huge (100 kB)
        Case("gan concept 100 kB", _run(t2u, **{"gan-text_to_unlearn-concept": HUGE})),
        Case("gan neutral 100 kB", _run(t2u, **{"gan-text_to_unlearn-neutral": HUGE})),
        Case("gan generate concept 100 kB", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-concept": HUGE})),
        Case("diffusion concept 100 kB", _run(uce, **{"diffusion-uce-concept": HUGE})),
        Case("diffusion user prompts 100 kB", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-user_prompts": HUGE})),
        Case("diffusion 5,000 prompt lines", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-user_prompts": "a face\n" * 5000})),
        Case("llm chat 100 kB", _ask("llm_chat", {"llm-chat-in": HUGE})),
        Case("llm prompts 100 kB", _ask("llm_generate", generate_inputs("llm") | {"llm-gen-prompts": HUGE})),
        Case("llm forget prompts 100 kB", _run(ksd, **{"llm-key_space_detection-forget_skill": "custom",
                                                      "llm-key_space_detection-forget_prompts": HUGE})),
        # unicode and control characters
        Case("gan concept control chars", _run(t2u, **{"gan-text_to_unlearn-concept": "\x00\x01\x07\x1b[2J"})),
        Case("gan concept zero-width only", _run(t2u, **{"gan-text_to_unlearn-concept": "\u200b\u200b\u200d"})),
        Case("gan concept emoji only", _run(t2u, **{"gan-text_to_unlearn-concept": "🕶️🕶️"})),
        Case("diffusion concept digits only", _run(uce, **{"diffusion-uce-concept": "12345"})),
        Case("diffusion concept control chars", _run(uce, **{"diffusion-uce-concept": "\x00\x08\x7f"})),
        Case("diffusion user prompt NUL", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-user_prompts": "a face\x00 wearing glasses"}), wrong=False),
        Case("gan generate concept RTL override", _ask("gan_generate", generate_inputs("gan") | {
            "gan-gen-concept": "glasses\u202e"}), wrong=False),
        Case("llm chat control chars", _ask("llm_chat", {"llm-chat-in": "\x00\x1b[31mhi\x07"}), wrong=False),
        # injection-looking strings
        Case("gan concept script tag", _run(t2u, **{"gan-text_to_unlearn-concept": "<script>alert(1)</script>"}),
             wrong=False),
        Case("diffusion concept sql", _run(uce, **{"diffusion-uce-concept": "'; DROP TABLE users; --"}),
             wrong=False),
        Case("gan generate concept path", _ask("gan_generate", generate_inputs("gan") | {
            "gan-gen-concept": "../../../../etc/passwd"}), wrong=False),
        Case("llm chat template", _ask("llm_chat", {"llm-chat-in": "{{7*7}} ${jndi:ldap://x/a} <|im_end|>"}),
             wrong=False),
        Case("llm custom prompts python", _run(ksd, **{
            "llm-key_space_detection-forget_skill": "custom",
            "llm-key_space_detection-forget_prompts": "__import__('os').system('rm -rf /')\n" * 4}), wrong=False),
        Case("diffusion user prompt html", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-user_prompts": "<img src=x onerror=alert(1)>"}), wrong=False),
        # out of range and non-finite numbers
        Case("gan count 0", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-count": 0})),
        Case("gan count 10^6", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-count": 1_000_000})),
        Case("gan seed negative", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-seed": -5})),
        Case("gan truncation 2", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-truncation_psi": 2.0})),
        Case("gan count 1.5", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-count": 1.5})),
        Case("gan steps 0", _run(t2u, **{"gan-text_to_unlearn-steps": 0})),
        Case("gan steps 10^9", _run(t2u, **{"gan-text_to_unlearn-steps": 10**9})),
        Case("gan lr NaN", _run(t2u, **{"gan-text_to_unlearn-lr": "NaN"})),
        Case("gan lr inf", _run(t2u, **{"gan-text_to_unlearn-lr": "Infinity"})),
        Case("gan lr -inf", _run(t2u, **{"gan-text_to_unlearn-lr": "-inf"})),
        Case("diffusion steps 0", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-steps": 0})),
        Case("diffusion guidance NaN", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-guidance": "nan"})),
        Case("diffusion seeds 10^4", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-seeds_per_prompt": 10_000})),
        Case("diffusion uce lam -1", _run(uce, **{"diffusion-uce-lam": -1})),
        Case("llm max tokens 10^5", _ask("llm_generate", generate_inputs("llm") | {"llm-gen-max_new_tokens": 10**5})),
        Case("llm per skill 0", _ask("llm_generate", generate_inputs("llm") | {"llm-gen-per_skill": 0})),
        Case("llm h NaN", _run(ksd, **{"llm-key_space_detection-h": "NaN"})),
        # wrong types
        Case("gan count text", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-count": "four"})),
        Case("gan seed list", _ask("gan_generate", generate_inputs("gan") | {"gan-gen-seed": [1, 2]})),
        Case("gan concept number", _run(t2u, **{"gan-text_to_unlearn-concept": 123})),
        Case("gan concept dict", _run(t2u, **{"gan-text_to_unlearn-concept": {"a": 1}})),
        Case("gan steps text", _run(t2u, **{"gan-text_to_unlearn-steps": "many"})),
        Case("gan pick text", _run(atu, **{"gan-pick": "zero"})),
        Case("gan pick number", _run(atu, **{"gan-pick": 3})),
        Case("gan checkbox text", _run(t2u, **{"gan-text_to_unlearn-augment": "false"})),
        Case("llm chat with a GAN preset", _ask("llm_chat", {"llm-preset": "faceworld", "llm-chat-in": "hi"})),
        Case("llm chat message number", _ask("llm_chat", {"llm-chat-in": 42})),
        Case("llm map view unknown", _ask("llm_map", generate_inputs("llm") | {"llm-map-view": "nope"})),
        Case("diffusion seeds null", _ask("diffusion_generate", generate_inputs("diffusion") | {
            "diffusion-gen-seeds_per_prompt": None}), wrong=False),
        Case("llm retain skills number", _run(ksd, **{"llm-key_space_detection-retain_skills": 7})),
        # unknown presets, methods, attacks, choices
        Case("gan preset unknown", _ask("gan_generate", generate_inputs("gan") | {"gan-preset": "nope"})),
        Case("gan preset test-only", _ask("gan_generate", generate_inputs("gan") | {"gan-preset": "tiny"})),
        Case("diffusion preset empty", _ask("diffusion_export", {"diffusion-preset": ""})),
        Case("llm load preset none", _ask("llm_load", {"llm-preset": None})),
        Case("gan preset a list", _ask("gan_generate", generate_inputs("gan") | {"gan-preset": ["faceworld"]})),
        Case("diffusion preset change to a dict", lambda v: str(v.call("diffusion_preset", {"diffusion-preset": {}})[0]),
             wrong=False),
        Case("gan method unknown", _run(t2u, **{"gan-method": "forget_everything"})),
        Case("diffusion method of another tab", _run(uce, **{"diffusion-method": "text_to_unlearn"})),
        Case("gan attack unknown", _ask("gan_attack", {"gan-attack": "nope"})),
        Case("gan layers unknown", _run(t2u, **{"gan-text_to_unlearn-layers": "every"})),
        Case("llm forget skill unknown", _run(ksd, **{"llm-key_space_detection-forget_skill": "chess"})),
        Case("llm retain skill unknown", _run(ksd, **{"llm-key_space_detection-retain_skills": "chess"})),
        Case("llm forget = retain skill", _run(ksd, **{"llm-key_space_detection-retain_skills": "python_coding"})),
        # concepts the model never draws
        Case("gan concept elephant", _run(t2u, **{"gan-text_to_unlearn-concept": "an elephant"})),
        Case("gan adapt concept car", _run(atu, **{"gan-adapt_then_unlearn-concept": "a red car"})),
        Case("diffusion concept spaceship", _run(uce, **{"diffusion-uce-concept": "a spaceship"}), wrong=False),
        # picks that do not exist
        Case("gan pick 999", _run(atu, **{"gan-pick": [999]})),
        Case("gan pick -1", _run(atu, **{"gan-pick": [-1]})),
        Case("diffusion pick 999", _run(fewshot, **{"diffusion-pick": [999]})),
        Case("gan pick without a gallery", _ask("gan_run", method_inputs(atu))),
        # export / reset / map before any edit
        Case("gan export before an edit", _ask("gan_export")),
        Case("diffusion export before an edit", _ask("diffusion_export")),
        Case("llm export before an edit", _ask("llm_export")),
        Case("gan reset before an edit", _ask("gan_reset", generate_inputs("gan")), wrong=False),
        # concurrency within one session and leaving mid-job
        Case("two runs at once in one session", _two_runs_at_once),
        Case("cancel with nothing running", lambda v: v.call("gan_cancel"), wrong=False),
        Case("closed tab mid-job", _closed_tab_mid_job(url, downloads), wrong=False),
    ]
    return cases


def judge(case: Case, visitor: Visitor) -> tuple[bool, str]:
    """(clear?, what the visitor saw): a non-empty explanation, no trace, an error where the input is wrong."""
    try:
        shown = case.send(visitor)
        error = is_error(shown)
    except Exception as exc:  # noqa: BLE001 - the server's refusals arrive as AppError
        from gradio_client.exceptions import AppError

        if not isinstance(exc, AppError):  # the client failed: the server never answered
            return False, f"client-side {type(exc).__name__}: {exc}"
        shown, error = str(exc), True
    text = text_of(shown)
    words = re.findall(r"[A-Za-z]{2,}", text)
    clear = len(words) >= 3 and not any(marker in text for marker in UNCLEAR) and (error or not case.wrong)
    return clear, text


def bad_inputs(url: str, workdir: Path) -> list[tuple[Case, bool, str]]:
    results = []
    for i, case in enumerate(bad_input_cases(url, workdir / "bad")):
        visitor = Visitor(url, workdir / f"bad{i}")
        try:
            clear, text = judge(case, visitor)
        finally:
            visitor.close()
        results.append((case, clear, text))
    return results


def server_serves(url: str, workdir: Path) -> bool:
    """A fresh visitor can still generate on every tab."""
    visitor = Visitor(url, workdir / "after")
    try:
        return all(not is_error(visitor.call(f"{b}_generate", generate_inputs(b))[0]) for b in GENERATE)
    except Exception:  # noqa: BLE001
        return False
    finally:
        visitor.close()


# cancel ---------------------------------------------------------------------------------------
def cancel_trials(trials: int = CANCEL_TRIALS) -> list[Any]:
    """The contract tests' cancel helper over every registered method, on each backend's tiny preset."""
    import torch

    from backends import registry
    from backends.jobs import JobManager
    from backends.lab import Lab
    from backends.store import ModelStore
    from tests.cancel_anywhere import cancel_at_random_steps

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    registry.load_all()
    results = []
    for backend in [b.name for b in registry.backends()]:
        preset = registry.TEST_PRESETS[0]
        registry.preset(backend, preset)  # a backend without the tiny preset fails loudly here
        for method in registry.methods(backend):
            lab = Lab(ModelStore(max_edit_bytes=2**30, device="cpu"), JobManager(concurrency=1))
            results += cancel_at_random_steps(lab, backend, preset, method, trials=trials)
    return results


def run() -> Iterator[dict]:
    count = int(os.environ.get("BENCH_RELIABILITY_SESSIONS", "16"))
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("UNLEARNING_LAB_EXPORT_DIR", str(workdir / "cancel-exports"))
        with AppServer(workdir) as server:
            load = sessions_under_load(server.url, workdir, count)
            for failure in load["failures"]:
                print(f"reliability: failed request: {failure}", file=sys.stderr)
            for leak in load["leaks"]:
                print(f"reliability: leak: {leak}", file=sys.stderr)
            yield {"name": "reliability.sessions", "value": load["sessions"], "unit": "sessions"}
            yield {"name": "reliability.cross_session_leaks", "value": len(load["leaks"]), "unit": "sessions"}
            yield {"name": "reliability.failed_requests", "value": len(load["failures"]), "unit": "requests"}
            yield {"name": "reliability.sessions_compared", "value": load["compared"], "unit": "sessions"}
            yield {"name": "reliability.distinct_edits", "value": load["distinct_edits"],
                   "unit": f"of {load['requests']} requests"}
            judged = bad_inputs(server.url, workdir)
            for case, clear, text in judged:
                if not clear:
                    print(f"reliability: unclear answer to {case.name!r}: {text[:300]!r}", file=sys.stderr)
            yield {"name": "reliability.bad_inputs", "value": len(judged), "unit": "cases"}
            yield {"name": "reliability.bad_inputs_clear_pct",
                   "value": round(100 * sum(c for _, c, _ in judged) / len(judged), 1), "unit": "%"}
            alive = server.alive() and server.proc.poll() is None and server_serves(server.url, workdir)
            yield {"name": "reliability.server_alive_after", "value": int(alive), "unit": "bool"}
            yield {"name": "reliability.peak_rss_gb", "value": round(server.peak_rss_gb(), 2), "unit": "GiB"}
    trials = cancel_trials()
    yield {"name": "reliability.cancel_trials", "value": len(trials), "unit": "trials"}
    yield {"name": "reliability.cancel_base_identical_pct",
           "value": round(100 * sum(t.base_identical and t.previous_edit_intact for t in trials) / len(trials), 1),
           "unit": "%"}
    yield {"name": "reliability.cancel_ok_pct", "value": round(100 * sum(t.ok for t in trials) / len(trials), 1),
           "unit": "%"}


if __name__ == "__main__":
    import json

    for metric in run():
        print(json.dumps(metric), flush=True)

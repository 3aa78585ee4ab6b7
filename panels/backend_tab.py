"""A generic backend tab, built entirely from the registry: presets, generation controls,
method forms, attacks, maps, export. A new method or attack needs no code here.

Layout follows FaceFusion's render-then-listen split: :meth:`BackendTab.render` creates the
components, :meth:`BackendTab.listen` wires the events. Callbacks are thin: parse input, call
the :class:`~backends.lab.Lab`, format with :mod:`panels.formatters`.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterator

import gradio as gr

from backends import registry
from backends.lab import Lab
from panels import formatters as fmt
from panels.controls import collect_values, render_config

log = logging.getLogger(__name__)

#: How often a running job's progress and live plot are pushed to the browser.
POLL_SECONDS = 0.5


def visible_presets(backend: str) -> list[tuple[str, str]]:
    """(label, name) of the presets shown in the UI; test-only "tiny" presets are hidden unless asked for."""
    show_tests = os.environ.get("UNLEARNING_LAB_SHOW_TEST_PRESETS") == "1"
    items = []
    for name, spec in registry.presets(backend).items():
        if name in registry.TEST_PRESETS and not show_tests:
            continue
        items.append((f"{spec.title} · {'offline' if spec.offline else 'downloads from the Hub'}", name))
    return items


def default_preset(backend: str) -> str | None:
    """The registry's embedded default, else the first preset shown."""
    shown = [name for _, name in visible_presets(backend)]
    return registry.default_preset(backend) or (shown or [None])[0]


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def leave_handler(lab: Lab) -> Callable[[gr.Request], None]:
    """Unload callback: free the leaving visitor's edits, gallery and job."""
    def on_leave(request: gr.Request) -> None:
        lab.leave(_session(request))

    return on_leave


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValueError):
        return str(exc)
    log.exception("callback failed")
    return f"Internal error ({type(exc).__name__}): {exc}"


def stream_job(start: Callable[[], Any], on_done: Callable[[Any], list[Any]], live: Callable[[Any], list[Any]],
               n_outputs: int) -> Iterator[list[Any]]:
    """Start a job, stream its progress every POLL_SECONDS, then show its result. Every yield is
    [status HTML, *the other ``n_outputs - 1`` outputs]; a failed start or result is one clear message."""
    keep = [gr.update()] * (n_outputs - 1)
    try:
        job = start()
    except Exception as exc:  # noqa: BLE001
        yield [fmt.message_html(_error_text(exc), "error"), *keep]
        return
    while True:
        state = job.wait(POLL_SECONDS)
        if state.is_finished:
            break
        yield [fmt.progress_html(state), *live(state)]
    if state.status != "done":
        yield [fmt.progress_html(state), *live(state)]
        return
    try:
        yield [fmt.progress_html(state), *on_done(state)]
    except Exception as exc:  # noqa: BLE001
        yield [fmt.message_html(_error_text(exc), "error"), *keep]


class BackendTab:
    """One tab of the app for one registered backend."""

    def __init__(self, lab: Lab, backend: str):
        self.lab = lab
        self.backend = registry.backend(backend)
        self.name = backend
        self.methods = registry.methods(backend)
        self.attacks = registry.attacks(backend)
        self.c: dict[str, Any] = {}
        self.method_controls: dict[str, dict[str, Any]] = {}
        self.method_groups: dict[str, Any] = {}
        self.attack_controls: dict[str, dict[str, Any]] = {}
        self.attack_groups: dict[str, Any] = {}
        self.gen_controls: dict[str, Any] = {}

    # render ------------------------------------------------------------------------------
    def render(self) -> None:
        be, c = self.backend, self.c
        gr.Markdown(be.description)
        with gr.Row(equal_height=True):
            c["preset"] = gr.Dropdown(choices=visible_presets(self.name), value=default_preset(self.name),
                                      label="Model", scale=3, elem_id=f"{self.name}-preset")
            c["load"] = gr.Button("Load model", scale=1, elem_id=f"{self.name}-load")
        c["status"] = gr.HTML(fmt.message_html("Model not loaded yet: it loads on first use."),
                              elem_id=f"{self.name}-status")

        with gr.Accordion("1 · Generate (before / after, same seeds)", open=True):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    self.gen_controls = render_config(be.generate_config, f"{self.name}-gen")
                    c["generate"] = gr.Button("Generate", variant="primary", elem_id=f"{self.name}-generate")
                with gr.Column(scale=3):
                    if be.output == "image":
                        c["gallery"] = gr.Gallery(label="Samples: base, and edited beside it once you unlearn",
                                                  columns=6, height="auto", object_fit="contain",
                                                  elem_id=f"{self.name}-gallery")
                        c["pick"] = gr.CheckboxGroup(
                            choices=[], elem_id=f"{self.name}-pick",
                            label="Forget samples: tick those that show what should be forgotten "
                                  "(used by methods that learn from picked samples)")
                    else:
                        c["texts"] = gr.Dataframe(headers=fmt.TEXT_HEADERS, value=[], wrap=True,
                                                  column_widths=["26%", "37%", "37%"], max_height=640,
                                                  interactive=False, elem_id=f"{self.name}-texts",
                                                  label="Answers: base and edited, same prompts, greedy decoding")
                        c["pick"] = gr.CheckboxGroup(choices=[], visible=False)
            if hasattr(be, "chat"):
                with gr.Row(equal_height=True):
                    c["chat_in"] = gr.Textbox(label="Ask both models", scale=4, elem_id=f"{self.name}-chat-in",
                                              placeholder="Type a message; the base and your edited model answer.")
                    c["chat_btn"] = gr.Button("Ask", scale=1, elem_id=f"{self.name}-chat-btn")
                with gr.Row():
                    c["chat_base"] = gr.Textbox(label="Base model", lines=6, interactive=False)
                    c["chat_edit"] = gr.Textbox(label="Your edited model", lines=6, interactive=False,
                                                elem_id=f"{self.name}-chat-edit")

        with gr.Accordion("2 · Unlearn", open=True):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    first = next(iter(self.methods), None)
                    c["method"] = gr.Dropdown(choices=[(m.title, n) for n, m in self.methods.items()], value=first,
                                              label="Method", elem_id=f"{self.name}-method")
                    for name, spec in self.methods.items():
                        with gr.Group(visible=name == first) as group:
                            gr.Markdown(self._describe(spec))
                            self.method_controls[name] = render_config(spec.config, f"{self.name}-{name}")
                        self.method_groups[name] = group
                    with gr.Row():
                        c["run"] = gr.Button("Unlearn", variant="primary", elem_id=f"{self.name}-run")
                        c["cancel"] = gr.Button("Cancel", variant="stop", elem_id=f"{self.name}-cancel")
                with gr.Column(scale=2):
                    c["progress"] = gr.HTML("", elem_id=f"{self.name}-progress")
                    c["curve"] = gr.Plot(label="Live loss / metrics", elem_id=f"{self.name}-curve")
                    c["metrics"] = gr.Dataframe(headers=fmt.METRIC_HEADERS, value=[], interactive=False, wrap=True,
                                                column_widths=["32%", "19%", "19%", "11%", "9%", "10%"],
                                                label="Metrics before / after", elem_id=f"{self.name}-metrics")
                    with gr.Accordion("Job log", open=False):
                        c["log"] = gr.Textbox(lines=8, max_lines=20, show_label=False, interactive=False)

        with gr.Accordion("3 · Embedding map (UMAP of representations, before vs after)", open=False):
            with gr.Row(equal_height=True):
                views = [(label, name) for name, label in be.map_views]
                c["map_view"] = gr.Radio(choices=views, value=views[0][1], label="What to map", scale=3,
                                         elem_id=f"{self.name}-map-view",
                                         visible=len(views) > 1)
                c["map_btn"] = gr.Button("Draw map", elem_id=f"{self.name}-map-btn", scale=1)
            c["map"] = gr.Plot(label="Map", elem_id=f"{self.name}-map")

        with gr.Accordion("4 · Attack the edited model", open=False):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    first_attack = next(iter(self.attacks), None)
                    c["attack"] = gr.Dropdown(choices=[(a.title, n) for n, a in self.attacks.items()],
                                              value=first_attack, label="Attack", elem_id=f"{self.name}-attack")
                    for name, spec in self.attacks.items():
                        with gr.Group(visible=name == first_attack) as group:
                            gr.Markdown(self._describe(spec))
                            self.attack_controls[name] = render_config(spec.config, f"{self.name}-{name}")
                        self.attack_groups[name] = group
                    with gr.Row():
                        c["attack_run"] = gr.Button("Run attack", variant="primary",
                                                    elem_id=f"{self.name}-attack-run")
                        c["attack_cancel"] = gr.Button("Cancel", variant="stop")
                with gr.Column(scale=2):
                    c["attack_progress"] = gr.HTML("", elem_id=f"{self.name}-attack-progress")
                    c["attack_summary"] = gr.Dataframe(headers=fmt.METRIC_HEADERS, value=[], interactive=False,
                                                       label="Attack summary: base vs edited",
                                                       elem_id=f"{self.name}-attack-summary")
                    c["attack_chart"] = gr.Plot(label="Attack chart")
                    c["attack_note"] = gr.Markdown("", elem_id=f"{self.name}-attack-note")
                    c["attack_images"] = gr.Gallery(label="What the attack found", columns=8, height="auto",
                                                    visible=self.backend.output == "image",
                                                    elem_id=f"{self.name}-attack-images")
                    c["attack_table"] = gr.Dataframe(value=[], interactive=False, wrap=True, label="Details")

        with gr.Accordion("5 · Your edits: reset or export", open=False):
            c["runs"] = gr.Markdown(fmt.runs_markdown([]))
            with gr.Row():
                c["reset"] = gr.Button("Reset to base model", elem_id=f"{self.name}-reset")
                c["export"] = gr.Button("Export edit (safetensors + run card)", elem_id=f"{self.name}-export")
            c["files"] = gr.File(label="Download", file_count="multiple", interactive=False)

    def _shown_preset(self, preset: Any) -> str:
        """The preset if the dropdown offers it; ValueError otherwise (test-only presets stay hidden)."""
        shown = [name for _, name in visible_presets(self.name)]
        if preset not in shown:
            raise ValueError(f"unknown model {preset!r}; choose one of: {', '.join(shown)}")
        return preset

    @staticmethod
    def _describe(spec: Any) -> str:
        text = spec.description.split("\n\n")[0] if spec.description else ""
        paper = f"\n\n*Paper:* {spec.paper}" if spec.paper else ""
        return f"{text}{paper}"

    # listen ------------------------------------------------------------------------------
    def listen(self) -> None:
        """Wire the events; each has the stable API name ``<backend>_<action>`` (e.g. ``gan_run``)."""
        c, api = self.c, self.name
        # The callbacks get the raw values and the backend validates them (build_config, the registry): one
        # clear message per bad value, whoever sends it, where gradio's own checks fail on a wrong type.
        raw = dict(preprocess=False)
        gen_inputs = {c["preset"], *self.gen_controls.values()}
        gallery_outputs = [c["status"], c["pick"], c["gallery"] if "gallery" in c else c["texts"]]

        c["preset"].change(self.on_preset, [c["preset"]], [c["status"], c["runs"], c["pick"]],
                           api_name=f"{api}_preset", **raw)
        c["load"].click(self.on_load, [c["preset"]], [c["status"]], api_name=f"{api}_load", **raw)
        c["generate"].click(self.on_generate, gen_inputs, gallery_outputs, api_name=f"{api}_generate", **raw)

        c["method"].change(lambda m: [gr.update(visible=n == m) for n in self.method_groups],
                           [c["method"]], list(self.method_groups.values()), queue=False)
        c["attack"].change(lambda a: [gr.update(visible=n == a) for n in self.attack_groups],
                           [c["attack"]], list(self.attack_groups.values()), queue=False)

        method_inputs = gen_inputs | {c["method"], c["pick"]} | {
            ctrl for controls in self.method_controls.values() for ctrl in controls.values()}
        c["run"].click(self.on_run, method_inputs,
                       [c["progress"], c["curve"], c["log"], c["metrics"], c["runs"], *gallery_outputs],
                       concurrency_limit=None, show_progress="hidden", api_name=f"{api}_run", **raw)
        c["cancel"].click(self.on_cancel, None, [c["progress"]], queue=False, api_name=f"{api}_cancel")

        attack_inputs = {c["preset"], c["attack"], c["pick"]} | {
            ctrl for controls in self.attack_controls.values() for ctrl in controls.values()}
        c["attack_run"].click(self.on_attack, attack_inputs,
                              [c["attack_progress"], c["attack_summary"], c["attack_chart"], c["attack_table"],
                               c["attack_note"], c["attack_images"]],
                              concurrency_limit=None, show_progress="hidden", api_name=f"{api}_attack", **raw)
        c["attack_cancel"].click(self.on_cancel, None, [c["attack_progress"]], queue=False,
                                 api_name=f"{api}_attack_cancel")

        if "chat_btn" in c:
            chat_inputs = [c["preset"], c["chat_in"]]
            c["chat_btn"].click(self.on_chat, chat_inputs, [c["chat_base"], c["chat_edit"], c["status"]],
                               api_name=f"{api}_chat", **raw)
            c["chat_in"].submit(self.on_chat, chat_inputs, [c["chat_base"], c["chat_edit"], c["status"]], **raw)
        c["map_btn"].click(self.on_map, gen_inputs | {c["map_view"]}, [c["map"], c["status"]],
                           api_name=f"{api}_map", **raw)
        c["reset"].click(self.on_reset, gen_inputs, [c["runs"], *gallery_outputs], api_name=f"{api}_reset", **raw)
        c["export"].click(self.on_export, [c["preset"]], [c["files"], c["status"]], api_name=f"{api}_export", **raw)

    # callbacks ---------------------------------------------------------------------------
    def _gen_values(self, data: dict) -> dict[str, Any]:
        return collect_values(self.backend.generate_config, self.gen_controls, data, None)

    def _gallery_update(self, session: str, preset: str, data: dict) -> list[Any]:
        """[status, pick, gallery-or-texts] after generating with the current generation settings."""
        before, after = self.lab.generate(session, self.name, preset, self._gen_values(data))
        picked = data.get(self.c["pick"]) or []
        choices = fmt.pick_choices(before)
        valid = [p for p in picked if isinstance(p, int) and 0 <= p < len(choices)]
        if self.backend.output == "image":
            shown = fmt.gallery_items(before, after)
        else:
            shown = fmt.text_rows(before, after)
        note = "before and after (your edit), same seeds" if after is not None else "base model (no edit yet)"
        return [fmt.message_html(f"{len(before)} samples: {note}", "done"),
                gr.update(choices=choices, value=valid), shown]

    def on_preset(self, preset: str, request: gr.Request):
        preset = preset if isinstance(preset, str) else None
        loaded = preset and self.lab.store.is_loaded(self.name, preset)
        runs = self.lab.runs(_session(request), self.name, preset) if preset else []
        text = "Model ready." if loaded else "Model not loaded yet: it loads on first use."
        return fmt.message_html(text), fmt.runs_markdown(runs), gr.update(choices=[], value=[])

    def on_load(self, preset: str) -> Iterator[str]:
        if not preset:
            yield fmt.message_html("Choose a model first.", "error")
            return
        try:
            yield fmt.message_html(f"Loading {registry.preset(self.name, self._shown_preset(preset)).title}…")
            yield fmt.message_html(self.lab.load(self.name, preset), "done")
        except Exception as exc:  # noqa: BLE001 - shown to the user as one line
            yield fmt.message_html(_error_text(exc), "error")

    def on_generate(self, data: dict, request: gr.Request) -> Iterator[list[Any]]:
        preset = data[self.c["preset"]]
        no_change = [gr.update(), gr.update()]
        if isinstance(preset, str) and not self.lab.store.is_loaded(self.name, preset):
            yield [fmt.message_html("Loading the model (first use)…"), *no_change]
        try:
            self.lab.load(self.name, self._shown_preset(preset))
            yield self._gallery_update(_session(request), preset, data)
        except Exception as exc:  # noqa: BLE001
            yield [fmt.message_html(_error_text(exc), "error"), *no_change]

    def on_run(self, data: dict, request: gr.Request) -> Iterator[list[Any]]:
        session, preset, method = _session(request), data[self.c["preset"]], data[self.c["method"]]
        n_keep = 3  # status, pick, gallery

        def start():
            self._shown_preset(preset)
            if not method:
                raise ValueError("choose a method first")
            spec = registry.method(self.name, method)
            values = collect_values(spec.config, self.method_controls[method], data, data.get(self.c["pick"]))
            return self.lab.start_unlearning(session, self.name, preset, method, values)

        edit_shown = []  # set once the edited samples are on screen
        estimate_shown: list[list[list[str]]] = [[]]  # the quick metrics estimate on screen

        def live(state) -> list[Any]:
            if state.edit_ready and not edit_shown:  # edit first: samples now, metrics when evaluated
                edit_shown.append(True)
                pending = [["evaluating… (the edit is ready: Cancel now keeps it)", "", "", "", "", ""]]
                return [fmt.history_figure(state.history), fmt.job_log(state), pending,
                        fmt.runs_markdown(self.lab.runs(session, self.name, preset)),
                        *self._gallery_update(session, preset, data)]
            estimate = fmt.metric_rows(state.preview, estimating=True) if state.preview else []
            if estimate and estimate != estimate_shown[0]:  # metrics fill in: estimate first, final at the end
                estimate_shown[0] = estimate
                return [fmt.history_figure(state.history), fmt.job_log(state), estimate, gr.update(),
                        *[gr.update()] * n_keep]
            return [fmt.history_figure(state.history), fmt.job_log(state), gr.update(), gr.update(),
                    *[gr.update()] * n_keep]

        def done(state) -> list[Any]:
            result = state.result
            return [fmt.history_figure(result.history), fmt.job_log(state), fmt.metric_rows(result.metrics),
                    fmt.runs_markdown(self.lab.runs(session, self.name, preset)),
                    *self._gallery_update(session, preset, data)]

        yield from stream_job(start, done, live, 5 + n_keep)

    def on_attack(self, data: dict, request: gr.Request) -> Iterator[list[Any]]:
        session, preset, attack = _session(request), data[self.c["preset"]], data[self.c["attack"]]

        def start():
            self._shown_preset(preset)
            if not attack:
                raise ValueError("choose an attack first")
            spec = registry.attack(self.name, attack)
            values = collect_values(spec.config, self.attack_controls[attack], data, data.get(self.c["pick"]))
            return self.lab.start_attack(session, self.name, preset, attack, values)

        def live(state) -> list[Any]:
            return [gr.update()] * 5

        def done(state) -> list[Any]:
            result = state.result
            headers, rows = fmt.table_rows(result.table)
            chart = fmt.chart_figure(result.chart) if result.chart else None
            return [fmt.metric_rows(result.summary), chart,
                    gr.update(value=rows, headers=headers) if headers else [],
                    result.explanation, fmt.attack_items(result.samples)]

        yield from stream_job(start, done, live, 6)

    def on_cancel(self, request: gr.Request) -> str:
        if self.lab.cancel(_session(request)):
            return fmt.message_html("Cancelling: the job stops at its next step and changes nothing.")
        return fmt.message_html("Nothing is running.")

    def on_chat(self, preset: str, message: str, request: gr.Request):
        try:
            self.lab.load(self.name, self._shown_preset(preset))
            base_answer, edited_answer = self.lab.chat(_session(request), self.name, preset, message)
            note = "answered by both models" if edited_answer is not None else "no edit yet: base model only"
            return base_answer, edited_answer or "(no edit yet)", fmt.message_html(note, "done")
        except Exception as exc:  # noqa: BLE001
            return gr.update(), gr.update(), fmt.message_html(_error_text(exc), "error")

    def on_map(self, data: dict, request: gr.Request):
        try:
            preset = self._shown_preset(data[self.c["preset"]])
            self.lab.load(self.name, preset)
            mapdata, coords, how = self.lab.embedding_map(_session(request), self.name, preset,
                                                          self._gen_values(data), data[self.c["map_view"]])
            return fmt.map_figure(mapdata, coords, how), fmt.message_html(f"Map drawn with {how}.", "done")
        except Exception as exc:  # noqa: BLE001
            return gr.update(), fmt.message_html(_error_text(exc), "error")

    def on_reset(self, data: dict, request: gr.Request):
        session, preset = _session(request), data[self.c["preset"]]
        try:
            had = self.lab.reset(session, self.name, self._shown_preset(preset))
            refreshed = self._gallery_update(session, preset, data) if self.lab.store.is_loaded(self.name, preset) \
                else [gr.update(), gr.update(), gr.update()]
            text = "Reset: your copy is the base model again." if had else "Nothing to reset: no edit yet."
            return [fmt.runs_markdown([]), fmt.message_html(text, "done"), *refreshed[1:]]
        except Exception as exc:  # noqa: BLE001
            return [gr.update(), fmt.message_html(_error_text(exc), "error"), gr.update(), gr.update()]

    def on_export(self, preset: str, request: gr.Request):
        try:
            paths = self.lab.export(_session(request), self.name, self._shown_preset(preset))
            return list(paths), fmt.message_html("Export ready: download below.", "done")
        except Exception as exc:  # noqa: BLE001
            return None, fmt.message_html(_error_text(exc), "error")

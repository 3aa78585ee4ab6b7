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


def stream_job(status: Any, start: Callable[[], Any], on_done: Callable[[Any], dict], live: Callable[[Any], dict],
               ) -> Iterator[dict]:
    """Start a job, stream its progress every POLL_SECONDS, then show its result. Every yield is a dict
    {component: value}: ``status`` (the progress HTML) plus what ``live`` / ``on_done`` return (components
    left out stay as they are); a failed start or result is one clear message in ``status``."""
    try:
        job = start()
    except Exception as exc:  # noqa: BLE001
        yield {status: fmt.message_html(_error_text(exc), "error")}
        return
    while True:
        state = job.wait(POLL_SECONDS)
        if state.is_finished:
            break
        yield {status: fmt.progress_html(state), **live(state)}
    if state.status != "done":
        yield {status: fmt.progress_html(state), **live(state)}
        return
    try:
        yield {status: fmt.progress_html(state), **on_done(state)}
    except Exception as exc:  # noqa: BLE001
        yield {status: fmt.message_html(_error_text(exc), "error")}


def cancel_job(lab: Any, request: gr.Request) -> str:
    """Ask the visitor's running job to stop; the status line that says so."""
    if lab.cancel(_session(request)):
        return fmt.message_html("Cancelling: the job stops at its next step and changes nothing "
                                "(during an evaluation, the edit is kept without metrics).")
    return fmt.message_html("Nothing is running.")


def metrics_estimate(metrics: Any) -> Callable[[Any], dict[Any, Any]]:
    """A ``live`` helper for jobs that evaluate: {metrics: the quick estimate's rows} each time the job's
    estimate changes (rows marked "estimating…"), else {} (the table stays as it is)."""
    shown: list[list[list[str]]] = [[]]

    def update(state) -> dict[Any, Any]:
        estimate = fmt.metric_rows(state.preview, estimating=True) if state.preview else []
        if estimate and estimate != shown[0]:
            shown[0] = estimate
            return {metrics: estimate}
        return {}

    return update


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
        """The tab, section by section; each builder returns its components by name (kept in ``self.c``)."""
        gr.Markdown(self.backend.description)
        for section in (self._model_section, self._generate_section, self._unlearn_section, self._map_section,
                        self._attack_section, self._edits_section):
            self.c.update(section())

    def _model_section(self) -> dict[str, Any]:
        with gr.Row(equal_height=True):
            preset = gr.Dropdown(choices=visible_presets(self.name), value=default_preset(self.name),
                                 label="Model", scale=3, elem_id=f"{self.name}-preset")
            load = gr.Button("Load model", scale=1, elem_id=f"{self.name}-load")
        status = gr.HTML(fmt.message_html("Model not loaded yet: it loads on first use."),
                         elem_id=f"{self.name}-status")
        return {"preset": preset, "load": load, "status": status}

    def _generate_section(self) -> dict[str, Any]:
        be, c = self.backend, {}
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
        c["shown"] = c["gallery"] if "gallery" in c else c["texts"]  # where samples appear, image or text
        return c

    def _chooser(self, specs: dict[str, Any], label: str, key: str) -> tuple[Any, dict, dict]:
        """A dropdown of registered methods or attacks, with one group of config controls per entry (only
        the chosen one visible): (dropdown, {name: controls}, {name: group})."""
        first = next(iter(specs), None)
        dropdown = gr.Dropdown(choices=[(spec.title, name) for name, spec in specs.items()], value=first,
                               label=label, elem_id=f"{self.name}-{key}")
        controls, groups = {}, {}
        for name, spec in specs.items():
            with gr.Group(visible=name == first) as group:
                gr.Markdown(self._describe(spec))
                controls[name] = render_config(spec.config, f"{self.name}-{name}")
            groups[name] = group
        return dropdown, controls, groups

    def _unlearn_section(self) -> dict[str, Any]:
        c = {}
        with gr.Accordion("2 · Unlearn", open=True):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    c["method"], self.method_controls, self.method_groups = self._chooser(
                        self.methods, "Method", "method")
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
        return c

    def _map_section(self) -> dict[str, Any]:
        c = {}
        with gr.Accordion("3 · Embedding map (UMAP of representations, before vs after)", open=False):
            with gr.Row(equal_height=True):
                views = [(label, name) for name, label in self.backend.map_views]
                c["map_view"] = gr.Radio(choices=views, value=views[0][1], label="What to map", scale=3,
                                         elem_id=f"{self.name}-map-view", visible=len(views) > 1)
                c["map_btn"] = gr.Button("Draw map", elem_id=f"{self.name}-map-btn", scale=1)
            c["map"] = gr.Plot(label="Map", elem_id=f"{self.name}-map")
        return c

    def _attack_section(self) -> dict[str, Any]:
        c = {}
        with gr.Accordion("4 · Attack the edited model", open=False):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    c["attack"], self.attack_controls, self.attack_groups = self._chooser(
                        self.attacks, "Attack", "attack")
                    with gr.Row():
                        c["attack_run"] = gr.Button("Run attack", variant="primary",
                                                    elem_id=f"{self.name}-attack-run")
                        c["attack_cancel"] = gr.Button("Cancel", variant="stop", elem_id=f"{self.name}-attack-cancel")
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
        return c

    def _edits_section(self) -> dict[str, Any]:
        c = {}
        with gr.Accordion("5 · Your edits: reset or export", open=False):
            c["runs"] = gr.Markdown(fmt.runs_markdown([]))
            with gr.Row():
                c["reset"] = gr.Button("Reset to base model", elem_id=f"{self.name}-reset")
                c["export"] = gr.Button("Export edit (safetensors + run card)", elem_id=f"{self.name}-export")
            c["files"] = gr.File(label="Download", file_count="multiple", interactive=False,
                                 elem_id=f"{self.name}-files")
        return c

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
        gallery_outputs = [c["status"], c["pick"], c["shown"]]

        c["preset"].change(self.on_preset, [c["preset"]], [c["status"], c["runs"], c["pick"]],
                           api_name=f"{api}_preset", **raw)
        c["load"].click(self.on_load, [c["preset"]], [c["status"]], api_name=f"{api}_load", **raw)
        c["generate"].click(self.on_generate, gen_inputs, gallery_outputs, api_name=f"{api}_generate", **raw)

        for chooser, groups in ((c["method"], self.method_groups), (c["attack"], self.attack_groups)):
            chooser.change(lambda chosen, groups=groups: {g: gr.update(visible=n == chosen) for n, g in groups.items()},
                           [chooser], list(groups.values()), queue=False)

        method_inputs = gen_inputs | {c["method"], c["pick"]} | {
            ctrl for controls in self.method_controls.values() for ctrl in controls.values()}
        c["run"].click(self.on_run, method_inputs,
                       [c["progress"], c["curve"], c["log"], c["metrics"], c["runs"], *gallery_outputs],
                       concurrency_limit=None, show_progress="hidden", api_name=f"{api}_run", **raw)
        # the cancel note goes to the status line: the running job's own stream owns the progress line, and a
        # late "Cancelling..." there would overwrite the stream's final "Cancelled" (seen in a browser test)
        c["cancel"].click(self.on_cancel, None, [c["status"]], queue=False, api_name=f"{api}_cancel")

        attack_inputs = {c["preset"], c["attack"], c["pick"]} | {
            ctrl for controls in self.attack_controls.values() for ctrl in controls.values()}
        c["attack_run"].click(self.on_attack, attack_inputs,
                              [c["attack_progress"], c["attack_summary"], c["attack_chart"], c["attack_table"],
                               c["attack_note"], c["attack_images"]],
                              concurrency_limit=None, show_progress="hidden", api_name=f"{api}_attack", **raw)
        c["attack_cancel"].click(self.on_cancel, None, [c["status"]], queue=False,
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

    # callbacks (each returns {component: value}; components left out stay as they are) -----------
    def _gen_values(self, data: dict) -> dict[str, Any]:
        return collect_values(self.backend.generate_config, self.gen_controls, data, None)

    def _gallery_update(self, session: str, preset: str, data: dict) -> dict[Any, Any]:
        """Status, picks and samples after generating with the current generation settings."""
        c = self.c
        before, after = self.lab.generate(session, self.name, preset, self._gen_values(data))
        picked = data.get(c["pick"]) or []
        choices = fmt.pick_choices(before)
        valid = [p for p in picked if isinstance(p, int) and 0 <= p < len(choices)]
        shown = fmt.gallery_items(before, after) if self.backend.output == "image" else fmt.text_rows(before, after)
        note = "before and after (your edit), same seeds" if after is not None else "base model (no edit yet)"
        return {c["status"]: fmt.message_html(f"{len(before)} samples: {note}", "done"),
                c["pick"]: gr.update(choices=choices, value=valid), c["shown"]: shown}

    def on_preset(self, preset: str, request: gr.Request) -> dict[Any, Any]:
        c = self.c
        preset = preset if isinstance(preset, str) else None
        loaded = preset and self.lab.store.is_loaded(self.name, preset)
        runs = self.lab.runs(_session(request), self.name, preset) if preset else []
        text = "Model ready." if loaded else "Model not loaded yet: it loads on first use."
        return {c["status"]: fmt.message_html(text), c["runs"]: fmt.runs_markdown(runs),
                c["pick"]: gr.update(choices=[], value=[])}

    def on_load(self, preset: str) -> Iterator[str]:
        if not preset:
            yield fmt.message_html("Choose a model first.", "error")
            return
        try:
            yield fmt.message_html(f"Loading {registry.preset(self.name, self._shown_preset(preset)).title}…")
            yield fmt.message_html(self.lab.load(self.name, preset), "done")
        except Exception as exc:  # noqa: BLE001 - shown to the user as one line
            yield fmt.message_html(_error_text(exc), "error")

    def on_generate(self, data: dict, request: gr.Request) -> Iterator[dict[Any, Any]]:
        status, preset = self.c["status"], data[self.c["preset"]]
        if isinstance(preset, str) and not self.lab.store.is_loaded(self.name, preset):
            yield {status: fmt.message_html("Loading the model (first use)…")}
        try:
            self.lab.load(self.name, self._shown_preset(preset))
            yield self._gallery_update(_session(request), preset, data)
        except Exception as exc:  # noqa: BLE001
            yield {status: fmt.message_html(_error_text(exc), "error")}

    def on_run(self, data: dict, request: gr.Request) -> Iterator[dict[Any, Any]]:
        c = self.c
        session, preset, method = _session(request), data[c["preset"]], data[c["method"]]

        def start():
            self._shown_preset(preset)
            if not method:
                raise ValueError("choose a method first")
            spec = registry.method(self.name, method)
            values = collect_values(spec.config, self.method_controls[method], data, data.get(c["pick"]))
            return self.lab.start_unlearning(session, self.name, preset, method, values)

        edit_shown = []  # set once the edited samples are on screen
        estimate = metrics_estimate(c["metrics"])  # metrics fill in: estimate first, final at the end

        def live(state) -> dict[Any, Any]:
            update = {c["curve"]: fmt.history_figure(state.history), c["log"]: fmt.job_log(state)}
            if state.edit_ready and not edit_shown:  # edit first: samples now, metrics when evaluated
                edit_shown.append(True)
                pending = [["evaluating… (the edit is ready: Cancel now keeps it)", "", "", "", "", ""]]
                return {**update, c["metrics"]: pending,
                        c["runs"]: fmt.runs_markdown(self.lab.runs(session, self.name, preset)),
                        **self._gallery_update(session, preset, data)}
            return {**update, **estimate(state)}

        def done(state) -> dict[Any, Any]:
            result = state.result
            return {c["curve"]: fmt.history_figure(result.history), c["log"]: fmt.job_log(state),
                    c["metrics"]: fmt.metric_rows(result.metrics),
                    c["runs"]: fmt.runs_markdown(self.lab.runs(session, self.name, preset)),
                    **self._gallery_update(session, preset, data)}

        yield from stream_job(c["progress"], start, done, live)

    def on_attack(self, data: dict, request: gr.Request) -> Iterator[dict[Any, Any]]:
        c = self.c
        session, preset, attack = _session(request), data[c["preset"]], data[c["attack"]]

        def start():
            self._shown_preset(preset)
            if not attack:
                raise ValueError("choose an attack first")
            spec = registry.attack(self.name, attack)
            values = collect_values(spec.config, self.attack_controls[attack], data, data.get(c["pick"]))
            return self.lab.start_attack(session, self.name, preset, attack, values)

        def done(state) -> dict[Any, Any]:
            result = state.result
            headers, rows = fmt.table_rows(result.table)
            return {c["attack_summary"]: fmt.metric_rows(result.summary),
                    c["attack_chart"]: fmt.chart_figure(result.chart) if result.chart else None,
                    c["attack_table"]: gr.update(value=rows, headers=headers) if headers else [],
                    c["attack_note"]: result.explanation, c["attack_images"]: fmt.attack_items(result.samples)}

        yield from stream_job(c["attack_progress"], start, done, lambda state: {})

    def on_cancel(self, request: gr.Request) -> str:
        return cancel_job(self.lab, request)

    def on_chat(self, preset: str, message: str, request: gr.Request) -> dict[Any, Any]:
        c = self.c
        try:
            self.lab.load(self.name, self._shown_preset(preset))
            base_answer, edited_answer = self.lab.chat(_session(request), self.name, preset, message)
            note = "answered by both models" if edited_answer is not None else "no edit yet: base model only"
            return {c["chat_base"]: base_answer, c["chat_edit"]: edited_answer or "(no edit yet)",
                    c["status"]: fmt.message_html(note, "done")}
        except Exception as exc:  # noqa: BLE001
            return {c["status"]: fmt.message_html(_error_text(exc), "error")}

    def on_map(self, data: dict, request: gr.Request) -> dict[Any, Any]:
        c = self.c
        try:
            preset = self._shown_preset(data[c["preset"]])
            self.lab.load(self.name, preset)
            mapdata, coords, how = self.lab.embedding_map(_session(request), self.name, preset,
                                                          self._gen_values(data), data[c["map_view"]])
            return {c["map"]: fmt.map_figure(mapdata, coords, how),
                    c["status"]: fmt.message_html(f"Map drawn with {how}.", "done")}
        except Exception as exc:  # noqa: BLE001
            return {c["status"]: fmt.message_html(_error_text(exc), "error")}

    def on_reset(self, data: dict, request: gr.Request) -> dict[Any, Any]:
        c = self.c
        session, preset = _session(request), data[c["preset"]]
        try:
            had = self.lab.reset(session, self.name, self._shown_preset(preset))
            refreshed = self._gallery_update(session, preset, data) if self.lab.store.is_loaded(self.name, preset) \
                else {}
            text = "Reset: your copy is the base model again." if had else "Nothing to reset: no edit yet."
            return {**refreshed, c["runs"]: fmt.runs_markdown([]), c["status"]: fmt.message_html(text, "done")}
        except Exception as exc:  # noqa: BLE001
            return {c["status"]: fmt.message_html(_error_text(exc), "error")}

    def on_export(self, preset: str, request: gr.Request) -> dict[Any, Any]:
        c = self.c
        try:
            paths = self.lab.export(_session(request), self.name, self._shown_preset(preset))
            return {c["files"]: list(paths), c["status"]: fmt.message_html("Export ready: download below.", "done")}
        except Exception as exc:  # noqa: BLE001
            return {c["files"]: None, c["status"]: fmt.message_html(_error_text(exc), "error")}

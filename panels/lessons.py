"""The Lessons tab: guided workshop lessons (backends/lessons.py), one button per step, settings filled in.

A teacher opens one by URL: ``/?lesson=gan`` (or diffusion, llm) selects the tab and the lesson. Steps run
through the same Lab (and so the same per-session copy of the model) as the backend tabs.
"""
from __future__ import annotations

from typing import Any, Iterator

import gradio as gr

from backends import lessons, registry
from backends.lab import Lab
from panels import formatters as fmt
from panels.backend_tab import _error_text, _session, cancel_job, metrics_estimate, stream_job

STEPS = 3


def intro_markdown(lesson: lessons.Lesson) -> str:
    steps = "\n".join(f"{i}. **{s.title}**: {s.explanation}" for i, s in enumerate(lesson.steps, 1))
    return f"## {lesson.title}\n{lesson.intro}\n\n{steps}\n\nPress the steps in order, then *What did we learn?*"


class LessonsTab:
    def __init__(self, lab: Lab, backends: list[str]):
        self.lab = lab
        self.lessons = {n: l for n, l in lessons.LESSONS.items() if l.backend in backends}
        self.c: dict[str, Any] = {}

    def render(self) -> None:
        c = self.c
        first = next(iter(self.lessons.values()))
        c["lesson"] = gr.Radio([(l.title, l.name) for l in self.lessons.values()], value=first.name,
                               label="Lesson", elem_id="lesson-choice")
        c["intro"] = gr.Markdown(intro_markdown(first), elem_id="lesson-intro")
        with gr.Row():
            for i in range(STEPS):
                c[f"step{i}"] = gr.Button(f"{i + 1} · {first.steps[i].title}", elem_id=f"lesson-step{i}")
            c["learn"] = gr.Button("What did we learn?", variant="primary", elem_id="lesson-learn")
            c["cancel"] = gr.Button("Cancel", variant="stop", elem_id="lesson-cancel")
        c["status"] = gr.HTML("", elem_id="lesson-status")
        c["notice"] = gr.HTML("", elem_id="lesson-notice")
        c["gallery"] = gr.Gallery(label="Before and after (same seeds)", columns=8, height="auto",
                                  elem_id="lesson-gallery")
        c["texts"] = gr.Dataframe(headers=fmt.TEXT_HEADERS, value=[], wrap=True, interactive=False,
                                  visible=False, elem_id="lesson-texts")
        c["metrics"] = gr.Dataframe(headers=fmt.METRIC_HEADERS, value=[], interactive=False, wrap=True,
                                    label="Metrics", elem_id="lesson-metrics")
        c["attack_note"] = gr.Markdown("", elem_id="lesson-attack-note")
        c["attack_summary"] = gr.Dataframe(headers=fmt.METRIC_HEADERS, value=[], interactive=False, wrap=True,
                                           label="Attack", elem_id="lesson-attack")
        c["attack_images"] = gr.Gallery(label="What the attack found", columns=8, height="auto",
                                        elem_id="lesson-attack-images")
        c["learned"] = gr.Markdown("", elem_id="lesson-learned")
        c["results"] = gr.State({})  # this visitor's numbers for the conclusion (no model state)

    def listen(self, tabs: gr.Tabs, demo: gr.Blocks) -> None:
        c = self.c
        steps = [c[f"step{i}"] for i in range(STEPS)]
        c["lesson"].change(self.on_choose, [c["lesson"]],
                           [c["intro"], *steps, c["gallery"], c["texts"], c["metrics"], c["attack_summary"],
                            c["attack_note"], c["attack_images"], c["learned"], c["results"]])
        outputs = [c["status"], c["gallery"], c["texts"], c["metrics"], c["attack_summary"], c["attack_note"],
                   c["attack_images"], c["results"]]
        for i, button in enumerate(steps):
            button.click(self._runner(i), [c["lesson"], c["results"]], outputs, concurrency_limit=None,
                         show_progress="hidden")
        c["learn"].click(self.on_learn, [c["lesson"], c["results"]], [c["learned"]])
        c["cancel"].click(self.on_cancel, None, [c["notice"]], queue=False)  # the step's stream owns "status"
        demo.load(self.on_open, None, [tabs, c["lesson"]])

    # callbacks ---------------------------------------------------------------------------
    def on_open(self, request: gr.Request):
        """``?lesson=<name>`` opens the Lessons tab on that lesson."""
        name = (request.query_params.get("lesson") if request is not None else None) or ""
        if name in self.lessons:
            return gr.Tabs(selected="lessons"), name
        return gr.Tabs(), gr.update()

    def on_choose(self, name: str) -> dict[Any, Any]:
        """A fresh page for the chosen lesson: its intro and step titles, everything else emptied."""
        c, lesson = self.c, lessons.LESSONS[name]
        image = registry.backend(lesson.backend).output == "image"
        return {c["intro"]: intro_markdown(lesson),
                **{c[f"step{i}"]: gr.Button(f"{i + 1} · {s.title}") for i, s in enumerate(lesson.steps)},
                c["gallery"]: gr.Gallery(value=None, visible=image),
                c["texts"]: gr.Dataframe(value=[], visible=not image),
                c["metrics"]: [], c["attack_summary"]: [], c["attack_note"]: "", c["attack_images"]: None,
                c["learned"]: "", c["results"]: {}}

    def on_cancel(self, request: gr.Request) -> str:
        return cancel_job(self.lab, request)

    def on_learn(self, name: str, results: dict) -> str:
        lesson = lessons.LESSONS[name]
        return lessons.conclusion(lesson, results.get("metrics", []), results.get("attack", []),
                                  results.get("explanation", ""))

    def _runner(self, index: int):
        def run(name: str, results: dict, request: gr.Request) -> Iterator[list[Any]]:
            yield from self.on_step(name, index, results, request)
        return run

    def _samples(self, session: str, lesson: lessons.Lesson) -> dict[Any, Any]:
        c = self.c
        before, after = self.lab.generate(session, lesson.backend, lesson.preset, lesson.steps[0].values)
        if registry.backend(lesson.backend).output == "image":
            return {c["gallery"]: fmt.gallery_items(before, after)}
        return {c["texts"]: fmt.text_rows(before, after)}

    def on_step(self, name: str, index: int, results: dict, request: gr.Request) -> Iterator[dict[Any, Any]]:
        """One step's button; every yield is {component: value} (components left out stay as they are)."""
        c, lesson, session = self.c, lessons.LESSONS[name], _session(request)
        step = lesson.steps[index]
        results = dict(results or {})
        if step.action == "generate":
            try:
                self.lab.load(lesson.backend, lesson.preset)
                edited = " and your edit" if self.lab.has_edit(session, lesson.backend, lesson.preset) else ""
                yield {c["status"]: fmt.message_html(f"Step {index + 1} done: samples of the base model{edited}.",
                                                     "done"),
                       **self._samples(session, lesson), c["results"]: results}
            except Exception as exc:  # noqa: BLE001
                yield {c["status"]: fmt.message_html(_error_text(exc), "error"), c["results"]: results}
            return
        shown = []  # set once the edited samples are on screen (edit first)

        def start():
            self.lab.load(lesson.backend, lesson.preset)
            begin = self.lab.start_unlearning if step.action == "unlearn" else self.lab.start_attack
            return begin(session, lesson.backend, lesson.preset, step.name, step.values)

        def samples_once(state) -> dict[Any, Any]:
            if step.action == "unlearn" and state.edit_ready and not shown:
                shown.append(True)
                return self._samples(session, lesson)
            return {}

        estimate = metrics_estimate(c["metrics"])  # the quick estimate, until the final rows

        def live(state) -> dict[Any, Any]:
            return {**samples_once(state), **estimate(state), c["results"]: results}

        def done(state) -> dict[Any, Any]:
            if step.action == "unlearn":
                results["metrics"] = state.result.metrics
                return {**samples_once(state), c["metrics"]: fmt.metric_rows(state.result.metrics),
                        c["results"]: results}
            results["attack"], results["explanation"] = state.result.summary, state.result.explanation
            return {c["attack_summary"]: fmt.metric_rows(state.result.summary),
                    c["attack_note"]: state.result.explanation,
                    c["attack_images"]: fmt.attack_items(state.result.samples), c["results"]: results}

        yield from stream_job(c["status"], start, done, live)

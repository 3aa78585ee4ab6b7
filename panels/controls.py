"""Gradio controls generated from config dataclasses (see :mod:`backends.config`)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from backends.config import FieldSpec, field_specs


def control_for(spec: FieldSpec, elem_id: str | None = None) -> gr.components.Component:
    """One input component for a config field."""
    common = dict(label=spec.label, info=spec.help, elem_id=elem_id)
    if spec.widget == "bool":
        return gr.Checkbox(value=spec.default, **common)
    if spec.widget in ("int", "float"):
        if spec.min is not None and spec.max is not None:
            step = spec.step or (1 if spec.widget == "int" else (spec.max - spec.min) / 100)
            return gr.Slider(minimum=spec.min, maximum=spec.max, step=step, value=spec.default, **common)
        return gr.Number(value=spec.default, precision=0 if spec.widget == "int" else None, **common)
    if spec.widget == "choice":
        return gr.Dropdown(choices=list(spec.choices or ()), value=spec.default, **common)
    if spec.widget == "lines":
        return gr.Textbox(value="\n".join(spec.default), lines=4, max_lines=12, **common)
    if spec.widget == "textarea":
        return gr.Textbox(value=spec.default, lines=4, **common)
    if spec.widget == "text":
        return gr.Textbox(value=spec.default, lines=1, max_length=spec.max_length, **common)
    raise TypeError(f"no control for widget {spec.widget!r}")


def render_config(config_cls: type, elem_prefix: str) -> dict[str, gr.components.Component]:
    """Controls for every field except ``picked`` ones (those come from the gallery picker), each with
    the element id ``<elem_prefix>-<field name>`` (browser tests and API clients find fields by it).

    Fields marked ``advanced`` go into a collapsed accordion.
    """
    specs = [s for s in field_specs(config_cls) if s.widget != "picked"]
    controls = {s.name: control_for(s, f"{elem_prefix}-{s.name}") for s in specs if not s.advanced}
    advanced = [s for s in specs if s.advanced]
    if advanced:
        with gr.Accordion("Advanced settings", open=False):
            controls.update({s.name: control_for(s, f"{elem_prefix}-{s.name}") for s in advanced})
    return controls


def collect_values(config_cls: type, controls: dict[str, gr.components.Component],
                   data: dict[Any, Any], picked: list[int] | None) -> dict[str, Any]:
    """Values for :func:`backends.config.build_config` from an event's input dict."""
    values: dict[str, Any] = {}
    for spec in field_specs(config_cls):
        if spec.widget == "picked":
            values[spec.name] = [] if picked is None else picked  # build_config checks the type
        else:
            values[spec.name] = data[controls[spec.name]]
    return values

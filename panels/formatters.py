"""Pure formatting functions: backend values in, Gradio-ready values out (no gradio import).

Everything here is unit-testable without a browser or a model.
"""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any, Sequence

from backends.contract import Chart, MapData, MetricRow, Sample

if TYPE_CHECKING:
    import numpy as np
    from plotly.graph_objects import Figure

    from backends.jobs import JobState

METRIC_HEADERS = ["metric", "before", "after", "change", "better", "samples"]
TEXT_HEADERS = ["prompt", "before (base)", "after (edited)"]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def gallery_items(before: Sequence[Sample], after: Sequence[Sample] | None) -> list[tuple["np.ndarray", str]]:
    """(image, caption) items; with an edit, each base image is followed by the edited one of the same key."""
    after_by_key = {s.key: s for s in after or []}
    missing = [s.key for s in before if after is not None and s.key not in after_by_key]
    if missing:
        raise ValueError(f"edited samples are missing keys {missing[:3]}: before/after must share seeds")
    items = []
    for index, sample in enumerate(before):
        if sample.image is None:
            raise ValueError(f"sample {sample.key} has no image")
        tag = f"#{index} · {sample.key}"
        if after is None:
            items.append((sample.image, tag))
        else:
            items.append((sample.image, f"{tag} · before"))
            items.append((after_by_key[sample.key].image, f"{tag} · after"))
    return items


def attack_items(samples: Sequence[Sample]) -> list[tuple["np.ndarray", str]]:
    """(image, caption) items of an attack's evidence: group (e.g. base / edited, before / after attack),
    key, prompt and the judge's labels that are not 'absent'."""
    items = []
    for sample in samples:
        if sample.image is None:
            continue
        shown = ", ".join(v for v in sample.labels.values() if v not in ("none", "neutral", "absent"))
        parts = [sample.group or "", sample.key, sample.prompt or "", f"judge: {shown}" if shown else ""]
        items.append((sample.image, " · ".join(p for p in parts if p)))
    return items


def text_rows(before: Sequence[Sample], after: Sequence[Sample] | None) -> list[list[str]]:
    """Rows of prompt / base answer / edited answer, aligned by sample key."""
    after_by_key = {s.key: s for s in after or []}
    return [[s.prompt or s.key, s.text or "", (after_by_key[s.key].text or "") if s.key in after_by_key else "—"]
            for s in before]


def pick_choices(samples: Sequence[Sample]) -> list[tuple[str, int]]:
    """CheckboxGroup choices: a readable label per gallery sample, valued by its gallery index."""
    choices = []
    for index, s in enumerate(samples):
        shown = ", ".join(v for k, v in s.labels.items() if v not in ("none", "neutral", "absent")) if s.labels else ""
        label = f"#{index} · {s.key}" + (f" ({shown})" if shown else "")
        choices.append((label, index))
    return choices


def _fmt_ci(value: float | None, interval: tuple[float, float] | None, unit: str) -> str:
    """A value with its 95 % interval, e.g. '40.3 % [38.2, 42.5]'."""
    if value is None or interval is None:
        return _fmt(value, unit)
    return f"{_fmt(value, unit)} [{interval[0]:.3g}, {interval[1]:.3g}]"


def metric_rows(rows: Sequence[MetricRow], estimating: bool = False) -> list[list[str]]:
    """Table rows: metric, before, after (with 95 % intervals where given), change, which direction is
    better, and the number of samples the row rests on. ``estimating``: a quick estimate on the first
    samples, each row marked so until the evaluation is final."""
    table = []
    for r in rows:
        delta = r.delta
        change = "—" if delta is None else f"{'+' if delta >= 0 else ''}{_fmt(delta, r.unit)}"
        name = f"{r.name} (estimating…)" if estimating else r.name
        table.append([name, _fmt_ci(r.before, r.before_ci, r.unit), _fmt_ci(r.after, r.after_ci, r.unit), change,
                      r.better or "", "" if r.n is None else str(r.n)])
    return table


def progress_html(state: "JobState") -> str:
    """A progress bar with the job's phase, step and status, as a small HTML snippet."""
    status = state.status
    phase = html.escape(state.phase or "")
    if status == "failed":
        return f"<div class='ul-status ul-error'>⚠ {html.escape(state.error or 'failed')}</div>"
    if status == "cancelled":
        return f"<div class='ul-status'>⏹ {html.escape(state.error or 'cancelled')}</div>"
    if status == "done":
        return f"<div class='ul-status ul-done'>✓ done: {phase}</div>"
    steps = f" · step {state.step}/{state.total}" if state.total else ""
    percent = int(round(100 * state.fraction))
    label = phase
    if state.queue_position:
        waiting = "the edit is ready; its evaluation waits" if state.edit_ready else "waiting"
        label = f"{waiting} for a free compute slot: number {state.queue_position} in line"
    elif status == "queued":
        label = "waiting for a free compute slot"
    return (f"<div class='ul-status'><progress max='100' value='{percent}'></progress> "
            f"{html.escape(label)}{steps}</div>")


def message_html(text: str, kind: str = "info") -> str:
    """A one-line status message (kind: info, error, done)."""
    icon = {"error": "⚠ ", "done": "✓ "}.get(kind, "")
    return f"<div class='ul-status ul-{kind}'>{icon}{html.escape(text)}</div>"


def job_log(state: "JobState") -> str:
    return "\n".join(state.log[-200:])


def _figure() -> "Figure":
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=40, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def history_figure(history: Sequence[dict[str, float]], title: str = "Live training curve") -> "Figure":
    """One line per logged metric against step (the live loss plot)."""
    import plotly.graph_objects as go

    fig = _figure()
    names = sorted({k for row in history for k in row if k != "step"})
    for name in names:
        points = [(row["step"], row[name]) for row in history if name in row]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="value")
    return fig


def map_figure(data: MapData, coords: "np.ndarray", how: str) -> "Figure":
    """Scatter of projected embeddings: colour = label, marker = before/after/anchor."""
    import plotly.graph_objects as go

    if len(coords) != len(data.labels):
        raise ValueError(f"{len(coords)} coordinates for {len(data.labels)} points")
    symbols = {"before": "circle", "after": "x", "anchor": "star"}
    fig = _figure()
    fig.update_layout(height=460)
    for group in ("before", "after", "anchor"):
        for label in sorted(set(data.labels)):
            idx = [i for i, (g, l) in enumerate(zip(data.groups, data.labels)) if g == group and l == label]
            if not idx:
                continue
            fig.add_trace(go.Scatter(
                x=[float(coords[i, 0]) for i in idx], y=[float(coords[i, 1]) for i in idx],
                mode="markers+text" if group == "anchor" else "markers",
                text=[data.names[i] for i in idx] if group == "anchor" else None,
                hovertext=[data.names[i] for i in idx], hoverinfo="text",
                marker=dict(symbol=symbols.get(group, "circle"), size=14 if group == "anchor" else 8),
                name=f"{group}: {label}"))
    fig.update_layout(title=f"{data.title or 'Embedding map'} ({how})", xaxis_title="", yaxis_title="")
    return fig


def chart_figure(chart: Chart) -> "Figure":
    """A bar or line chart from an attack's :class:`Chart`."""
    import plotly.graph_objects as go

    fig = _figure()
    for name, values in chart.series.items():
        if len(values) != len(chart.x):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(chart.x)} x positions")
        trace = go.Bar if chart.kind == "bar" else go.Scatter
        fig.add_trace(trace(x=list(chart.x), y=list(values), name=name))
    fig.update_layout(title=chart.title, xaxis_title=chart.x_title, yaxis_title=chart.y_title,
                      barmode="group")
    return fig


def table_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of a list of dicts (union of keys, first-seen order)."""
    headers: list[str] = []
    for row in rows:
        headers += [k for k in row if k not in headers]
    return headers, [[_cell(row.get(h)) for h in headers] for row in rows]


def _cell(value: Any) -> Any:
    return _fmt(value) if isinstance(value, float) else ("" if value is None else value)


def runs_markdown(runs: Sequence[dict[str, Any]]) -> str:
    """The chain of edits of this session's model, newest last."""
    if not runs:
        return "No edits yet: this session uses the base model."
    lines = ["**Edits applied to your copy of the model (undo with Reset):**"]
    for i, run in enumerate(runs, 1):
        what = run.get("concept") or "forget set"
        lines.append(f"{i}. {run.get('method_title', run.get('method'))} on *{html.escape(str(what))}* "
                     f"({run.get('seconds', '?')} s)")
    return "\n".join(lines)

import numpy as np
import pytest

from backends.contract import Chart, MapData, MetricRow, Sample
from backends.jobs import JobState
from panels import formatters as fmt


def image(value):
    return np.full((4, 4, 3), value, dtype=np.uint8)


def test_gallery_pairs_before_and_after_by_key():
    before = [Sample("seed 1", 1, image=image(1)), Sample("seed 2", 2, image=image(2))]
    after = [Sample("seed 2", 2, image=image(20)), Sample("seed 1", 1, image=image(10))]
    items = fmt.gallery_items(before, after)
    assert [caption for _, caption in items] == [
        "#0 · seed 1 · before", "#0 · seed 1 · after", "#1 · seed 2 · before", "#1 · seed 2 · after"]
    assert [int(img[0, 0, 0]) for img, _ in items] == [1, 10, 2, 20]
    assert [c for _, c in fmt.gallery_items(before, None)] == ["#0 · seed 1", "#1 · seed 2"]
    with pytest.raises(ValueError, match="missing keys"):
        fmt.gallery_items(before, after[:1])


def test_text_rows_and_pick_choices():
    before = [Sample("q0", 0, prompt="Write add()", text="def add", labels={"skill": "python_coding"})]
    after = [Sample("q0", 0, prompt="Write add()", text="I can't")]
    assert fmt.text_rows(before, after) == [["Write add()", "def add", "I can't"]]
    assert fmt.text_rows(before, None) == [["Write add()", "def add", "—"]]
    assert fmt.pick_choices(before) == [("#0 · q0 (python_coding)", 0)]
    assert fmt.pick_choices([Sample("seed 3", 3, labels={"glasses": "none"})]) == [("#0 · seed 3", 0)]


def test_metric_rows_show_signed_change_and_missing_values():
    rows = fmt.metric_rows([MetricRow("presence", 0.9, 0.05, better="lower"),
                            MetricRow("fid", None, 3.0, unit="pts")])
    assert rows[0] == ["presence", "0.9", "0.05", "-0.85", "lower", ""]
    assert rows[1] == ["fid", "—", "3 pts", "—", "", ""]


def test_metric_rows_show_intervals_and_sample_counts():
    rows = fmt.metric_rows([MetricRow("presence", 40.0, 2.0, unit="%", better="lower", before_ci=(35.5, 44.7),
                                      after_ci=(1.1, 3.6), n=400)])
    assert rows[0] == ["presence", "40 % [35.5, 44.7]", "2 % [1.1, 3.6]", "-38 %", "lower", "400"]


def test_progress_html_for_every_status():
    running = JobState(status="running", step=3, total=12, phase="unlearning")
    assert "value='25'" in fmt.progress_html(running) and "step 3/12" in fmt.progress_html(running)
    assert "compute slot" in fmt.progress_html(JobState(status="queued"))
    assert "number 3 in line" in fmt.progress_html(JobState(status="queued", queue_position=3))
    waiting_evaluation = fmt.progress_html(JobState(status="running", edit_ready=True, queue_position=1))
    assert "edit is ready" in waiting_evaluation and "number 1 in line" in waiting_evaluation
    failed = fmt.progress_html(JobState(status="failed", error="<b>bad</b> concept"))
    assert "ul-error" in failed and "&lt;b&gt;" in failed, "errors are escaped"
    assert "done" in fmt.progress_html(JobState(status="done", phase="evaluating"))


def test_history_figure_has_one_trace_per_metric():
    fig = fmt.history_figure([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "cos": 0.5}])
    traces = {t.name: list(t.y) for t in fig.data}
    assert traces == {"cos": [0.5], "loss": [2.0, 1.0]}


def test_map_figure_groups_by_marker_and_colour():
    data = MapData(np.zeros((4, 3)), ["a", "b", "a", "text"], ["before", "before", "after", "anchor"],
                   ["s1", "s2", "s1", "glasses"], title="CLIP")
    fig = fmt.map_figure(data, np.arange(8.0).reshape(4, 2), "PCA")
    assert sorted(t.name for t in fig.data) == ["after: a", "anchor: text", "before: a", "before: b"]
    assert "PCA" in fig.layout.title.text
    with pytest.raises(ValueError):
        fmt.map_figure(data, np.zeros((3, 2)), "PCA")


def test_chart_figure_and_length_check():
    fig = fmt.chart_figure(Chart("line", [0, 1, 2], {"base": [1, 2, 3]}, title="relearn"))
    assert fig.data[0].type == "scatter" and list(fig.data[0].y) == [1, 2, 3]
    with pytest.raises(ValueError, match="2 values for 3"):
        fmt.chart_figure(Chart("bar", [0, 1, 2], {"base": [1, 2]}))


def test_table_rows_union_of_keys_and_runs_markdown():
    headers, rows = fmt.table_rows([{"a": 1, "b": 0.123456}, {"c": None}])
    assert headers == ["a", "b", "c"] and rows == [[1, "0.123", ""], ["", "", ""]]
    assert "base model" in fmt.runs_markdown([])
    md = fmt.runs_markdown([{"method_title": "UCE", "concept": "glasses", "seconds": 1.2}])
    assert "1. UCE on *glasses* (1.2 s)" in md


def test_attack_items_caption_the_evidence_and_skip_text_samples():
    import numpy as np

    image = np.zeros((4, 4, 3), dtype=np.uint8)
    items = fmt.attack_items([Sample("search 0", 5, image=image, labels={"glasses": "sunglasses", "hat": "none"},
                                     group="edited"),
                              Sample("q0", 0, text="an answer")])
    assert len(items) == 1 and items[0][1] == "edited · search 0 · judge: sunglasses"


def test_an_estimate_marks_every_row_until_final():
    from backends.contract import MetricRow

    rows = [MetricRow("presence", 40.0, 2.0, unit="%", n=48), MetricRow("FD", 0.0, 1.5)]
    assert all(r[0].endswith("(estimating…)") for r in fmt.metric_rows(rows, estimating=True))
    assert [r[0] for r in fmt.metric_rows(rows)] == ["presence", "FD"]

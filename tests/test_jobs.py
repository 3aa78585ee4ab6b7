import threading
import time

import pytest

from backends.jobs import JobManager


def wait(job, timeout=10.0):
    state = job.wait(timeout)
    assert state.is_finished, f"job still {state.status} after {timeout} s"
    return state


def test_done_job_keeps_result_and_history():
    jobs = JobManager()

    def work(ctx):
        ctx.phase("training", total=3)
        for i in range(3):
            ctx.step(i + 1, loss=1.0 / (i + 1))
        return "result"

    state = wait(jobs.submit("s", "t", work))
    assert state.status == "done" and state.result == "result"
    assert [row["step"] for row in state.history] == [1.0, 2.0, 3.0]
    assert state.history[-1]["loss"] == pytest.approx(1 / 3)
    assert state.fraction == 1.0


def test_value_error_becomes_message_and_other_errors_are_short():
    jobs = JobManager()
    state = wait(jobs.submit("a", "t", lambda ctx: (_ for _ in ()).throw(ValueError("concept is empty"))))
    assert state.status == "failed" and state.error == "concept is empty"
    state = wait(jobs.submit("b", "t", lambda ctx: {}["missing"]))
    assert state.status == "failed" and state.error.startswith("Internal error (KeyError)")
    assert "Traceback" not in state.error


def test_cancel_stops_within_one_step():
    jobs = JobManager()
    steps = []

    def endless(ctx):
        i = 0
        while True:
            i += 1
            steps.append(i)
            ctx.step(i)
            time.sleep(0.01)

    job = jobs.submit("s", "endless", endless)
    while not steps:
        time.sleep(0.005)
    assert jobs.cancel("s")
    state = wait(job, 2.0)
    assert state.status == "cancelled"
    count = len(steps)
    time.sleep(0.05)
    assert len(steps) == count, "the job kept stepping after it was cancelled"
    assert not jobs.cancel("s"), "nothing left to cancel"


def test_one_active_job_per_session_but_sessions_are_independent():
    jobs = JobManager(concurrency=2)
    release = threading.Event()
    first = jobs.submit("s", "slow", lambda ctx: release.wait(5))
    with pytest.raises(ValueError, match="already running"):
        jobs.submit("s", "second", lambda ctx: None)
    other = jobs.submit("t", "other", lambda ctx: "ok")
    assert wait(other).result == "ok"
    release.set()
    assert wait(first).status == "done"
    assert wait(jobs.submit("s", "third", lambda ctx: 3)).result == 3


def peak_concurrency(jobs: JobManager, count: int) -> int:
    """Submit ``count`` short jobs from as many sessions; the most that ever ran at once."""
    running, peak, lock = [0], [0], threading.Lock()

    def work(ctx):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    submitted = [jobs.submit(f"s{i}", "w", work) for i in range(count)]
    assert all(wait(j).status == "done" for j in submitted)
    return peak[0]


def test_concurrency_limit_is_respected():
    assert peak_concurrency(JobManager(concurrency=1), 4) == 1
    assert peak_concurrency(JobManager(concurrency=2), 6) == 2
    with pytest.raises(ValueError):
        JobManager(concurrency=0)


def test_waiting_edits_go_before_evaluations_and_see_their_place_in_line():
    jobs = JobManager(concurrency=1)
    order, gate = [], threading.Event()

    def unlearn(name):
        def work(ctx):
            if name == "a":
                gate.wait(5)  # hold the only slot until the others queue
            order.append(f"edit {name}")
            ctx.mark_edit_ready()
            ctx.yield_to_edits()
            order.append(f"evaluate {name}")
            return name
        return work

    first = jobs.submit("a", "a", unlearn("a"))
    later = [jobs.submit(name, name, unlearn(name)) for name in ("b", "c")]
    deadline = time.time() + 5
    while [j.snapshot().queue_position for j in later] != [1, 2] and time.time() < deadline:
        time.sleep(0.01)
    assert [j.snapshot().queue_position for j in later] == [1, 2]
    assert first.snapshot().queue_position == 0
    gate.set()
    assert [wait(j).result for j in (first, *later)] == ["a", "b", "c"]
    assert order == ["edit a", "edit b", "edit c", "evaluate a", "evaluate b", "evaluate c"]


def test_cancel_while_waiting_for_the_evaluation_slot_keeps_the_edit_and_frees_no_extra_slot():
    jobs = JobManager(concurrency=1)
    gate, edited, go = threading.Event(), threading.Event(), threading.Event()

    def blocker(ctx):
        gate.wait(5)

    def unlearn(ctx):
        ctx.mark_edit_ready()
        edited.set()
        go.wait(5)
        ctx.yield_to_edits()  # queued behind the blocker's edit
        return "evaluated"

    job = jobs.submit("a", "unlearn", unlearn)
    assert edited.wait(5)
    holder = jobs.submit("b", "blocker", blocker)
    deadline = time.time() + 5
    while holder.snapshot().queue_position != 1 and time.time() < deadline:
        time.sleep(0.01)
    go.set()
    while job.snapshot().queue_position != 1 and time.time() < deadline:  # b's edit took the slot: a waits
        time.sleep(0.01)
    assert job.snapshot().queue_position == 1 and job.snapshot().edit_ready
    jobs.cancel("a")
    state = wait(job)
    assert state.status == "cancelled" and "edit is kept" in state.error
    gate.set()
    wait(holder)
    assert peak_concurrency(jobs, 3) == 1, "one slot: the cancelled job did not give back a slot it no longer held"

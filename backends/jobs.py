"""Background jobs: one worker thread per job, a shared compute limit, progress and cancel.

A job function receives a :class:`JobContext`. It reports progress with :meth:`JobContext.step`,
which also raises :class:`JobCancelled` as soon as the user pressed Cancel, so a job stops
within one step. A ValueError becomes the job's user-facing error; any other exception is
logged server-side and shown as a short "internal error" line (no stack trace in the UI).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "done", "failed", "cancelled"]


class JobCancelled(Exception):
    """Raised inside a job when the user cancelled it."""


@dataclass
class JobState:
    """A snapshot-able view of a job's progress (read by the UI while the job runs)."""

    status: Status = "queued"
    step: int = 0
    total: int = 0
    phase: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    edit_ready: bool = False  # the job's edit exists (committed) while its evaluation may still run
    queue_position: int = 0   # waiting for a compute slot: 1 = next in line (0: not waiting)
    preview: list | None = None  # a quick estimate of the metrics (MetricRow list) until the result is final

    @property
    def is_finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


class JobContext:
    """Handed to a job function: progress reporting, logging and the stop flag."""

    def __init__(self, state: JobState, stop: threading.Event, lock: threading.Lock,
                 requeue: Callable[[], None] | None = None):
        self._state, self._stop, self._lock, self._requeue = state, stop, lock, requeue

    @classmethod
    def standalone(cls, stop: threading.Event | None = None) -> "JobContext":
        """A context outside any job (benchmarks, tests); ``stop`` lets the caller cancel."""
        return cls(JobState(status="running"), stop or threading.Event(), threading.Lock())

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        """Raise JobCancelled if the user asked to stop."""
        if self._stop.is_set():
            raise JobCancelled()

    def phase(self, name: str, total: int = 0) -> None:
        """Start a named phase ("unlearning", "evaluating", ...) with ``total`` steps."""
        self.check()
        with self._lock:
            self._state.phase, self._state.step, self._state.total = name, 0, total
            self._state.log.append(f"{time.strftime('%H:%M:%S')} {name}")

    def step(self, step: int, total: int | None = None, **metrics: float) -> None:
        """Report progress (and optional metrics for the live plot); stop here if cancelled."""
        with self._lock:
            self._state.step = step
            if total is not None:
                self._state.total = total
            if metrics:
                row = {"step": float(step)}
                row.update({k: float(v) for k, v in metrics.items()})
                self._state.history.append(row)
        self.check()

    def log(self, message: str) -> None:
        with self._lock:
            self._state.log.append(f"{time.strftime('%H:%M:%S')} {message}")

    def mark_edit_ready(self) -> None:
        """Tell the UI the edit exists, so it can show edited samples before the evaluation ends."""
        with self._lock:
            self._state.edit_ready = True

    def preview(self, rows: list) -> None:
        """Show a quick estimate of the metrics (on the first samples) while the evaluation goes on."""
        with self._lock:
            self._state.preview = list(rows)

    def yield_to_edits(self) -> None:
        """Hand the compute slot to jobs waiting to make an edit and queue again behind them (the rest of
        this job, e.g. its evaluation, is evidence that can wait; the visitors waiting for an edit cannot).
        Outside a job manager: nothing to do."""
        if self._requeue is not None:
            self._requeue()

    @property
    def history(self) -> list[dict[str, float]]:
        with self._lock:
            return [dict(r) for r in self._state.history]


class Job:
    """A running or finished job; :meth:`snapshot` gives a consistent copy of its state."""

    def __init__(self, job_id: int, session: str, title: str, slots: "ComputeSlots | None" = None):
        self.id, self.session, self.title = job_id, session, title
        self.stop = threading.Event()
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._state = JobState()
        self._slots = slots
        self.context = JobContext(self._state, self.stop, self._lock, self._requeue if slots else None)

    def snapshot(self) -> JobState:
        position = self._slots.position(self) if self._slots is not None else 0
        with self._lock:
            s = self._state
            return JobState(s.status, s.step, s.total, s.phase, [dict(r) for r in s.history], list(s.log),
                            s.result, s.error, s.started, s.finished, s.edit_ready, position,
                            list(s.preview) if s.preview is not None else None)

    def _requeue(self) -> None:
        self._slots.release(self)
        self._slots.acquire(self, ComputeSlots.LATER)

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self._state, k, v)

    def wait(self, timeout: float | None = None) -> JobState:
        self.done.wait(timeout)
        return self.snapshot()


class ComputeSlots:
    """``count`` compute slots, handed out first to jobs that will make an edit (NOW), then to the rest
    of jobs that already made theirs (LATER: evaluation), first come first served within a priority.
    A waiting job is cancelled at once when its stop flag is set."""

    NOW, LATER = 0, 1

    def __init__(self, count: int):
        if count < 1:
            raise ValueError("concurrency must be at least 1")
        self._free = count
        self._cond = threading.Condition()
        self._waiting: dict[Job, tuple[int, int]] = {}
        self._holders: set[Job] = set()
        self._tickets = itertools.count()

    def acquire(self, job: Job, priority: int) -> None:
        with self._cond:
            entry = self._waiting[job] = (priority, next(self._tickets))
            try:
                while not (self._free > 0 and min(self._waiting.values()) == entry):
                    if job.stop.is_set():
                        raise JobCancelled()
                    self._cond.wait(0.1)
                self._free -= 1
                self._holders.add(job)
            finally:
                del self._waiting[job]
                self._cond.notify_all()

    def release(self, job: Job) -> None:
        """Give back ``job``'s slot (nothing when it holds none, e.g. cancelled while queued again)."""
        with self._cond:
            if job in self._holders:
                self._holders.discard(job)
                self._free += 1
                self._cond.notify_all()

    def position(self, job: Job) -> int:
        """1 + how many waiting jobs go before ``job``; 0 when it is not waiting."""
        with self._cond:
            entry = self._waiting.get(job)
            return 0 if entry is None else 1 + sum(other < entry for other in self._waiting.values())


class JobManager:
    """Runs jobs in worker threads, at most ``concurrency`` computing at once (one GPU, one slot).

    Each session has at most one active job; its latest job stays readable until the next.
    """

    def __init__(self, concurrency: int = 1):
        self._slots = ComputeSlots(concurrency)
        self._lock = threading.Lock()
        self._latest: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, session: str, title: str, fn: Callable[[JobContext], Any]) -> Job:
        """Start ``fn(ctx)`` in a worker; ValueError if this session already has a job running."""
        with self._lock:
            current = self._latest.get(session)
            if current is not None and not current.done.is_set():
                raise ValueError(f"a job is already running ({current.title}); wait for it or cancel it")
            job = Job(next(self._ids), session, title, self._slots)
            self._latest[session] = job
        threading.Thread(target=self._run, args=(job, fn), name=f"job-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job, fn: Callable[[JobContext], Any]) -> None:
        job.context.log(f"queued: {job.title}")
        try:
            self._slots.acquire(job, ComputeSlots.NOW)
            job._set(status="running", started=time.time())
            job.context.check()
            result = fn(job.context)
        except JobCancelled:
            job._set(status="cancelled", error="Cancelled during the evaluation: the edit is kept, without metrics."
                     if job.snapshot().edit_ready else "Cancelled: nothing was changed.")
        except ValueError as exc:
            job._set(status="failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - the UI gets a short line, the log the traceback
            log.error("job %s (%s) failed:\n%s", job.id, job.title, traceback.format_exc())
            job._set(status="failed", error=f"Internal error ({type(exc).__name__}): {exc}")
        else:
            job._set(status="done", result=result)
        finally:
            self._slots.release(job)
            job._set(finished=time.time())
            job.done.set()

    def latest(self, session: str) -> Job | None:
        with self._lock:
            return self._latest.get(session)

    def cancel(self, session: str) -> bool:
        """Ask the session's running job to stop; True if there was one."""
        job = self.latest(session)
        if job is None or job.done.is_set():
            return False
        job.stop.set()
        return True

    def forget(self, session: str) -> None:
        """Cancel and drop a session's job (the visitor left)."""
        self.cancel(session)
        with self._lock:
            self._latest.pop(session, None)

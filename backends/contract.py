"""The backend contract: the typed values every backend exchanges with the app.

A backend (GAN, diffusion, LLM) subclasses :class:`Backend`. Methods and attacks are plain
functions registered with :mod:`backends.registry`. Nothing here imports torch or gradio.

The method contract (what adding a method takes). A method is one file in its backend's package,
imported by the package's ``__init__`` (tab order), holding:

- a frozen dataclass config whose fields are declared with :func:`backends.config.param`: they are the
  UI's form (element ids ``<backend>-<method>-<field>``). It builds with no arguments (its defaults are
  the UI's and what :meth:`Backend.warm_up` gets at start-up), raises ValueError on a bad value (``param``
  limits, ``__post_init__`` for the rest), and has a ``smoke()`` classmethod: a cheap config for the tiny
  preset that the contract tests, cancel-anywhere and ``bench.reliability`` run (without it they use the
  defaults). A field with ``widget="picked"`` receives the gallery samples the user ticked
  (``MethodCall.picked``);
- ``run(call: MethodCall) -> None`` decorated with ``registry.register_method(backend, name, title=...,
  config=..., paper=...)``: it edits ``call.model`` in place, reads ``call.base`` only, reports through
  ``call.ctx`` (progress, live metrics, cancel checks) and raises ValueError on input it cannot use.

Each backend's base config holds what the backend reads from every method config; a method config
subclasses it and adds its own fields (the form lists the base's evaluation fields, ``param(evaluation=True)``,
after them):

- GAN: ``backends.gan.concept_config.GanConceptConfig``: ``concept`` (text up to
  ``concepts.MAX_CONCEPT_CHARS``, resolved by ``backends.gan.concepts.resolve``) and ``eval_samples``, which
  ``GanBackend.evaluate`` and ``warm_up`` read (with an optional ``neutral``, default "a face");
  ``bench.gan`` sets ``concept`` and, when the config has one, ``seed``.
- Diffusion: ``backends.diffusion.erasure_config.ErasureConfig``: ``concept`` (checked by
  ``faceworld.concepts.check_text``), ``eval_prompts`` and ``eval_seeds``, which ``DiffusionBackend.evaluate``
  and ``warm_up`` read; ``bench.diffusion`` sets ``concept`` (and ``forget_images`` when the config has it).
  Diffusion attacks subclass its ``ConceptConfig`` (the concept alone).
- LLM: ``backends.llm.skill_config.SkillConfig``: ``forget_skill``, ``retain_skills``, pasted prompts,
  ``probe_items``, ``eval_items`` and ``eval_max_new_tokens``, which ``LLMBackend.evaluate`` and ``warm_up``
  read; ``bench.llm`` builds ``config(forget_skill=..., eval_items=...)``.

The UI's method dropdown, the start-up warm-up, the contract tests and the quality benchmarks (``bench.gan``,
``bench.diffusion``, ``bench.llm``) list methods from the registry, so nothing else has to name the method
(``tests/test_method_contract.py`` registers a throwaway method and finds it in each, and checks that every
shipped config extends its backend's base).

:meth:`Backend.concept_of` names what a config unlearns from ``concept``, ``forget_skill`` or ``skill``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

if TYPE_CHECKING:
    import numpy as np

    from backends.jobs import JobContext


@dataclass
class Sample:
    """One generation: an image or a text, made from a seed (and a prompt, if any)."""

    key: str                         # stable id within a generation request, e.g. "seed 7" or "p2 · seed 0"
    seed: int
    prompt: str | None = None
    image: "np.ndarray | None" = None  # (H, W, 3) uint8
    text: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # e.g. {"glasses": "sunglasses"}, judged by a classifier
    group: str | None = None         # prompt group, e.g. "concept", "neighbour", "unrelated"


@dataclass
class MetricRow:
    """A number before and after unlearning (either may be None when it does not apply).

    Rates carry their 95 % interval (``before_ci`` / ``after_ci``, same unit) and the number of
    samples they rest on (``n``), so the table never shows a bare rate.
    """

    name: str
    before: float | None
    after: float | None
    unit: str = ""
    better: Literal["lower", "higher"] | None = None
    help: str = ""
    before_ci: tuple[float, float] | None = None
    after_ci: tuple[float, float] | None = None
    n: int | None = None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass
class RunResult:
    """What an unlearning run returns to the app."""

    metrics: list[MetricRow]
    history: list[dict[str, float]]  # one dict per logged step, always with key "step"
    summary: str = ""


@dataclass
class MapData:
    """Points to draw on an embedding map: samples before/after plus text anchors."""

    points: "np.ndarray"   # (N, D) raw embeddings; the app projects them to 2-D
    labels: list[str]      # colour: e.g. "glasses" / "no glasses"
    groups: list[str]      # marker: "before", "after" or "anchor"
    names: list[str]       # hover text
    title: str = ""


@dataclass
class Chart:
    """A small chart description, drawn by the app (bar chart or line chart)."""

    kind: Literal["bar", "line"]
    x: list[Any]
    series: dict[str, list[float]]
    title: str = ""
    x_title: str = ""
    y_title: str = ""


@dataclass
class AttackResult:
    """Outcome of an attack on the base and the edited model."""

    summary: list[MetricRow]
    table: list[dict[str, Any]] = field(default_factory=list)
    chart: Chart | None = None
    samples: list[Sample] = field(default_factory=list)  # the attack's evidence (images or answers), shown
    explanation: str = ""  # one plain sentence: what the evidence shows


@dataclass(frozen=True)
class PresetSpec:
    """An allow-listed model source. ``offline`` presets run with no network on a CPU."""

    backend: str
    name: str
    title: str
    load: Callable[[str], Any]       # load(device) -> base model bundle
    offline: bool
    description: str = ""


@dataclass
class MethodCall:
    """Everything an unlearning method gets. It edits ``model`` in place (a private clone)."""

    backend: "Backend"
    base: Any                 # frozen base model: read it, never change it
    model: Any                # the clone to edit (the session's current edit or a copy of the base)
    config: Any               # the method's validated config dataclass
    ctx: "JobContext"         # progress, metrics for the live plot, cancel checks
    picked: list[Sample] = field(default_factory=list)  # gallery samples the user ticked


@dataclass
class AttackCall:
    """Everything an attack gets. ``edited`` is the base itself when the session has no edit."""

    backend: "Backend"
    base: Any
    edited: Any
    has_edit: bool
    config: Any
    ctx: "JobContext"
    picked: list[Sample] = field(default_factory=list)


@dataclass(frozen=True)
class _RegisteredRun:
    """A registered function with its config dataclass, title and paper (what the registry stores)."""

    backend: str
    name: str
    title: str
    config: type
    run: Callable[..., Any]
    paper: str = ""
    description: str = ""


@dataclass(frozen=True)
class MethodSpec(_RegisteredRun):
    """An unlearning method: ``run(call: MethodCall) -> None`` edits ``call.model`` in place."""


@dataclass(frozen=True)
class AttackSpec(_RegisteredRun):
    """A probe of the edited model: ``run(call: AttackCall) -> AttackResult``."""


class Backend(abc.ABC):
    """A family of generative models (GAN, diffusion, LLM) the app can unlearn in.

    Model objects are backend-specific bundles. The app never mutates a base model: it asks for
    :meth:`clone`, lets a method edit the clone, and keeps it only if the run succeeds.
    """

    name: ClassVar[str]                 # registry key, e.g. "gan"
    title: ClassVar[str]                # tab title
    description: ClassVar[str] = ""
    output: ClassVar[Literal["image", "text"]] = "image"
    generate_config: ClassVar[type]     # dataclass of the generation controls
    #: Embedding-map views: (name of a method with :meth:`embed`'s signature, label in the UI).
    map_views: ClassVar[tuple[tuple[str, str], ...]] = (("embed", "Samples"),)

    @abc.abstractmethod
    def clone(self, model: Any) -> Any:
        """An independent editable copy of ``model`` (editing it never touches ``model``)."""

    @abc.abstractmethod
    def generate(self, model: Any, config: Any) -> list[Sample]:
        """Samples for ``config``; the same config gives the same seeds for every model."""

    @abc.abstractmethod
    def evaluate(self, base: Any, edited: Any, method_config: Any, ctx: "JobContext") -> list[MetricRow]:
        """Before/after metrics of an edit made with ``method_config``."""

    @abc.abstractmethod
    def embed(self, base: Any, edited: Any, config: Any) -> MapData:
        """Representations of the same inputs under both models, for the embedding map."""

    @abc.abstractmethod
    def state_tensors(self, model: Any) -> dict[str, Any]:
        """Every tensor that defines the edit-able state (weights, hook statistics), by name."""

    def warm_up(self, base: Any, method_config: Any, ctx: "JobContext") -> None:
        """Compute and cache what :meth:`evaluate` needs from ``base`` alone (its own and the gold model's
        evaluation) for ``method_config``; the app calls it in the background at start-up with each
        method's defaults, so the first visitor's metrics do not wait for it. Default: nothing to cache."""

    def nbytes(self, model: Any) -> int:
        """Memory held by a session's edited model (used by the store's LRU cap)."""
        return sum(int(t.numel()) * int(t.element_size()) for t in self.state_tensors(model).values())

    def concept_of(self, config: Any) -> str:
        """A short name of what a method config unlearns, for run cards and titles."""
        for attr in ("concept", "forget_skill", "skill"):
            value = getattr(config, attr, None)
            if value:
                return str(value)
        return ""

"""Method and generation configs: dataclasses whose fields carry UI metadata.

A config field is declared with :func:`param`, which stores the label, help text, range and
choices in the dataclass field's metadata. The UI builds one control per field from
:func:`field_specs`; the backend validates user values with :func:`build_config`. A new method
therefore needs no UI code: its dataclass *is* its form.
"""
from __future__ import annotations

import dataclasses
import math
import typing
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

Widget = Literal["bool", "int", "float", "choice", "text", "textarea", "lines", "picked"]


def param(
    default: Any,
    *,
    help: str,
    label: str | None = None,
    min: float | None = None,
    max: float | None = None,
    step: float | None = None,
    choices: tuple[str, ...] | None = None,
    max_length: int | None = None,
    max_items: int | None = None,
    widget: Widget | None = None,
    advanced: bool = False,
    evaluation: bool = False,
) -> Any:
    """A dataclass field with UI metadata.

    ``widget`` is inferred from the field's type when omitted: ``bool``, ``int``, ``float``,
    ``str`` (``choice`` when ``choices`` is given) and ``tuple[str, ...]`` (``lines``: one item
    per line). ``picked`` is a ``tuple[int, ...]`` of the gallery samples the user ticks. ``evaluation``
    marks how the before/after is measured (not how the method edits): such fields, which the backends'
    base configs declare, are listed after the method's own.
    """
    meta = dict(help=help, label=label, min=min, max=max, step=step, choices=choices,
                max_length=max_length, max_items=max_items, widget=widget, advanced=advanced,
                evaluation=evaluation)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) as default, not a mutable container")
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class FieldSpec:
    """Everything the UI needs to draw one control and the backend needs to check its value."""

    name: str
    widget: Widget
    default: Any
    label: str
    help: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    max_length: int | None = None
    max_items: int | None = None
    advanced: bool = False
    evaluation: bool = False


def _infer_widget(tp: Any, choices: tuple[str, ...] | None) -> Widget:
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if tp is float:
        return "float"
    if tp is str:
        return "choice" if choices else "text"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and args and args[-1] is Ellipsis:
        if args[0] is str:
            return "lines"
        if args[0] is int:
            return "picked"
    raise TypeError(f"unsupported config field type {tp!r}")


def field_specs(config_cls: type) -> list[FieldSpec]:
    """One :class:`FieldSpec` per field of a config dataclass: the method's own fields in declaration order,
    then the evaluation fields (a base config declares them first, the form lists them last)."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass")
    hints = typing.get_type_hints(config_cls)
    specs = []
    for f in dataclasses.fields(config_cls):
        meta = dict(f.metadata)
        if "help" not in meta:
            raise TypeError(f"{config_cls.__name__}.{f.name} must be declared with param(...)")
        widget = meta["widget"] or _infer_widget(hints[f.name], meta["choices"])
        label = meta["label"] or f.name.replace("_", " ").capitalize()
        specs.append(FieldSpec(
            name=f.name, widget=widget, default=f.default, label=label, help=meta["help"],
            min=meta["min"], max=meta["max"], step=meta["step"], choices=meta["choices"],
            max_length=meta["max_length"], max_items=meta["max_items"], advanced=meta["advanced"],
            evaluation=meta["evaluation"],
        ))
    return sorted(specs, key=lambda spec: spec.evaluation)  # stable: declaration order within each part


def _refuse_control_characters(name: str, text: str) -> None:
    """ValueError naming the first control character (NUL, escape, bell...); tabs and line breaks are text."""
    bad = next((ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r"), None)
    if bad is not None:
        raise ValueError(f"{name}: contains the control character {bad!r}; remove it")


def _coerce(spec: FieldSpec, value: Any) -> Any:
    """Turn a UI value into the field's type, or raise ValueError naming the field."""
    name = spec.label
    if value is None:
        value = spec.default
    if spec.widget == "bool":
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return bool(value)
    if spec.widget in ("int", "float"):
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
        if spec.widget == "int":
            if number != int(number):
                raise ValueError(f"{name}: expected a whole number, got {value!r}")
            number = int(number)
        if spec.min is not None and number < spec.min:
            raise ValueError(f"{name}: {number} is below the minimum {spec.min}")
        if spec.max is not None and number > spec.max:
            raise ValueError(f"{name}: {number} is above the maximum {spec.max}")
        return number
    if spec.widget in ("text", "textarea", "choice"):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected text, got {type(value).__name__}")
        _refuse_control_characters(name, value)
        value = value.strip()
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"{name}: {value!r} is not one of {', '.join(spec.choices)}")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ValueError(f"{name}: {len(value)} characters is over the limit of {spec.max_length}")
        return value
    if spec.widget == "lines":
        if not isinstance(value, (str, list, tuple)):
            raise ValueError(f"{name}: expected text, one item per line, got {type(value).__name__}")
        items = value.splitlines() if isinstance(value, str) else list(value)
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"{name}: expected text, one item per line, got {item!r}")
            _refuse_control_characters(name, item)
        items = tuple(s.strip() for s in items if str(s).strip())
        if spec.max_items is not None and len(items) > spec.max_items:
            raise ValueError(f"{name}: {len(items)} lines is over the limit of {spec.max_items}")
        if spec.max_length is not None:
            for item in items:
                if len(item) > spec.max_length:
                    raise ValueError(f"{name}: a line of {len(item)} characters is over the limit "
                                     f"of {spec.max_length}: {item[:40]!r}...")
        return items
    if spec.widget == "picked":
        try:
            items = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a list of sample seeds, got {value!r}") from None
        if spec.max_items is not None and len(items) > spec.max_items:
            raise ValueError(f"{name}: {len(items)} samples picked, the limit is {spec.max_items}")
        return tuple(sorted(set(items)))
    raise TypeError(f"unknown widget {spec.widget!r}")


def build_config(config_cls: type, values: dict[str, Any] | None = None) -> Any:
    """Validated config instance from user values (missing fields take their defaults).

    Raises ValueError with a message fit for the UI on unknown fields, wrong types, values
    out of range, unknown choices or text over its length limit. A config may add cross-field
    checks in ``__post_init__`` (raising ValueError), which run here too.
    """
    values = dict(values or {})
    specs = {s.name: s for s in field_specs(config_cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    kwargs = {name: _coerce(spec, values.get(name, spec.default)) for name, spec in specs.items()}
    return config_cls(**kwargs)


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-friendly dict of a config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}

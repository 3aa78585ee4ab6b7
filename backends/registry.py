"""Registries of backends, presets, methods and attacks, filled by decorators where defined.

Backend packages are imported on demand by :func:`load_all`; importing them must stay cheap
(no torch), so building the UI never loads a model.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from backends.contract import AttackSpec, Backend, MethodSpec, PresetSpec

#: Backend packages shipped with the app, in tab order.
BACKEND_MODULES: tuple[str, ...] = ("backends.gan", "backends.diffusion", "backends.llm")

_backends: dict[str, Backend] = {}
_presets: dict[str, dict[str, PresetSpec]] = {}
_methods: dict[str, dict[str, MethodSpec]] = {}
_attacks: dict[str, dict[str, AttackSpec]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a backend available under ``cls.name``."""
    if cls.name in _backends and type(_backends[cls.name]) is not cls:
        raise ValueError(f"backend {cls.name!r} is already registered")
    _backends[cls.name] = cls()
    return cls


def register_preset(backend: str, name: str, *, title: str, offline: bool, description: str = "") -> Callable:
    """Function decorator: ``load(device) -> model`` becomes an allow-listed preset."""
    def decorate(load: Callable[[str], Any]) -> Callable[[str], Any]:
        _presets.setdefault(backend, {})[name] = PresetSpec(backend, name, title, load, offline, description)
        return load
    return decorate


def _registering(table: dict, spec_cls: type, backend: str, name: str, title: str, config: type, paper: str,
                 description: str) -> Callable:
    """A decorator that stores ``spec_cls(...)`` of the function it decorates (description: its docstring)."""
    def decorate(run: Callable[..., Any]) -> Callable[..., Any]:
        table.setdefault(backend, {})[name] = spec_cls(backend, name, title, config, run, paper,
                                                       description or (run.__doc__ or "").strip())
        return run
    return decorate


def register_method(backend: str, name: str, *, title: str, config: type, paper: str = "",
                    description: str = "") -> Callable:
    """Function decorator for ``run(call: MethodCall) -> None`` (edits ``call.model`` in place)."""
    return _registering(_methods, MethodSpec, backend, name, title, config, paper, description)


def unregister_method(backend: str, name: str) -> MethodSpec:
    """Remove a registered method and return its spec (for tests that register a throwaway method)."""
    spec = _lookup(_methods.get(backend, {}), name, f"{backend} method")
    del _methods[backend][name]
    return spec


def register_attack(backend: str, name: str, *, title: str, config: type, paper: str = "",
                    description: str = "") -> Callable:
    """Function decorator for ``run(call: AttackCall) -> AttackResult``."""
    return _registering(_attacks, AttackSpec, backend, name, title, config, paper, description)


def load_all(modules: tuple[str, ...] | None = None) -> None:
    """Import the backend packages so their decorators run (idempotent, cheap)."""
    for module in BACKEND_MODULES if modules is None else modules:
        importlib.import_module(module)


def _lookup(table: dict[str, Any], key: str, what: str) -> Any:
    try:
        return table[key]
    except KeyError:
        valid = ", ".join(sorted(table)) or "none"
        raise ValueError(f"unknown {what} {key!r}; valid: {valid}") from None


def backends() -> list[Backend]:
    return list(_backends.values())


def backend(name: str) -> Backend:
    return _lookup(_backends, name, "backend")


def presets(backend_name: str) -> dict[str, PresetSpec]:
    return dict(_presets.get(backend_name, {}))


def preset(backend_name: str, name: str) -> PresetSpec:
    return _lookup(_presets.get(backend_name, {}), name, f"{backend_name} preset")


#: Presets of tiny random models for tests, never a tab's default.
TEST_PRESETS = ("tiny",)


def default_preset(backend_name: str) -> str | None:
    """The embedded default: the first offline preset that is not a test preset (None when there is none)."""
    return next((name for name, spec in presets(backend_name).items()
                 if spec.offline and name not in TEST_PRESETS), None)


def methods(backend_name: str) -> dict[str, MethodSpec]:
    return dict(_methods.get(backend_name, {}))


def method(backend_name: str, name: str) -> MethodSpec:
    return _lookup(_methods.get(backend_name, {}), name, f"{backend_name} method")


def attacks(backend_name: str) -> dict[str, AttackSpec]:
    return dict(_attacks.get(backend_name, {}))


def attack(backend_name: str, name: str) -> AttackSpec:
    return _lookup(_attacks.get(backend_name, {}), name, f"{backend_name} attack")

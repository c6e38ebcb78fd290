"""Migration engines: small plug-ins over the shared replay core (model.md §4.5)."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    from . import baseline, luf, migrc, migrc_unsafe, nobatch  # noqa: F401  (they register)


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def create(cfg: Config):
    _load()
    if cfg.engine not in _REGISTRY:
        raise ConfigError(f"config key 'engine': {cfg.engine!r} is not implemented yet "
                          f"(available: {', '.join(sorted(_REGISTRY)) or 'none'}); set "
                          f"tiering.enabled = false to replay without migration")
    return _REGISTRY[cfg.engine](cfg)

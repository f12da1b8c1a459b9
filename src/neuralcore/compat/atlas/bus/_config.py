"""Configuration side of the ATLAS-compatible bus: config files, ``apply_config`` (with
the same validation as :func:`load_atlas_messaging`), channel hot updates and hot reload."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuralcore.compat.atlas.bus._types import ChannelConfig, SecurityConfig

if TYPE_CHECKING:
    from neuralcore.compat.atlas.bus._dispatch import Dispatcher

__all__ = ("BusConfigMixin",)


class BusConfigMixin:
    """Config methods of :class:`NeuralcoreCognitiveBus` (which provides the state below)."""

    logger: logging.Logger
    default_max_queue_size: int
    running: bool
    _channel_cfg: dict[str, ChannelConfig]
    _security: SecurityConfig
    _dispatcher: Dispatcher
    _hot_path: Path | None
    _hot_interval: float
    _hot_mtime: float | None

    if TYPE_CHECKING:

        def create_channel(self, channel_name: str, cfg: ChannelConfig | None = None) -> None: ...
        def _set_limiter(self, cfg: ChannelConfig) -> None: ...

    def load_config_file(self, path: str | Path) -> dict[str, Any]:
        """Read a YAML (``.yaml``/``.yml``) or JSON config file into a dict.

        Raises
        ------
        FileNotFoundError
            the file does not exist.
        """
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(str(p))
        if p.suffix.lower() in (".yaml", ".yml"):
            from neuralcore.core._config import load_yaml_mapping

            return load_yaml_mapping(p)
        data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8") or "{}")
        return data

    def apply_config(self, cfg: Mapping[str, Any]) -> None:
        """Apply ``{"channels": {name: settings}, "security": {...}}``: create new channels,
        update existing ones (limits, drop policy, dead letters, fan-out, codec fields).

        Raises
        ------
        ConfigError
            an unknown key or bad value; the error names it (``channels.jobs.max_queue``).
        """
        from neuralcore.compat.atlas._settings import AtlasMessagingConfig

        parsed = AtlasMessagingConfig.from_dict(cfg)
        if isinstance(cfg.get("security"), Mapping):
            self._apply_security(parsed.security, set(cfg["security"]))
        for name, settings in parsed.channels.items():
            given = set(cfg["channels"][name] or {})
            fields = {k: getattr(settings, k) for k in given}
            if name in self._channel_cfg:
                self._hot_update(name, fields)
            else:
                fields.setdefault("max_queue_size", self.default_max_queue_size)
                self.create_channel(name, ChannelConfig(name=name, **fields))

    def _apply_security(self, sec: Any, given: set[str]) -> None:
        """Merge the given security keys into the current settings (others are kept)."""
        converters: dict[str, Callable[[Any], Any]] = {
            "api_keys": set,
            "jwt_algorithms": list,
            "channel_roles": lambda roles: {k: set(v) for k, v in roles.items()},
        }
        for key in given:
            value = getattr(sec, key)
            setattr(self._security, key, converters.get(key, lambda v: v)(value))

    def _hot_update(self, name: str, fields: dict[str, Any]) -> None:
        cfg = self._channel_cfg[name]
        for key, value in fields.items():
            if key != "max_queue_size":  # the queue bound is fixed at creation, as in ATLAS
                setattr(cfg, key, value)
        self._set_limiter(cfg)
        self._dispatcher.fanout.pop(name, None)
        dlq = cfg.dead_letter_channel
        if dlq and dlq != name and dlq not in self._channel_cfg:
            self.create_channel(dlq)
        self.logger.info("hot-updated channel %s", name)

    async def _hot_reload_loop(self) -> None:
        path = self._hot_path
        assert path is not None  # only started when set
        while self.running:
            try:
                mtime = path.stat().st_mtime if path.exists() else None
                if mtime is not None and (self._hot_mtime is None or mtime > self._hot_mtime):
                    self.apply_config(self.load_config_file(path))
                    self._hot_mtime = mtime
            except (OSError, ValueError) as err:  # a bad edit must not stop the bus
                self.logger.warning("hot reload of %s failed: %s", path, err)
            await asyncio.sleep(self._hot_interval)

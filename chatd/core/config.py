"""Settings the core needs, independent of how they were given (CLI, env, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything that shapes the server's behaviour, with the documented defaults."""

    name: str = "chatd"
    network: str = "chatd"
    motd_lines: tuple[str, ...] | None = None
    password: str | None = None
    ping_interval_s: float = 120.0
    ping_timeout_s: float = 60.0
    max_clients: int = 10_000
    plain_channel: str = "#lobby"
    created: str = "today"
    isupport_extra: dict[str, str] = field(default_factory=dict)

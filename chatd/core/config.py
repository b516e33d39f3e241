"""Settings the core needs, independent of how they were given (CLI, env, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

NICK_ENFORCEMENT_MODES = ("strict", "timeout", "optional")
ACCOUNT_REGISTRATION_MODES = ("before-connect", "after-connect", "closed")
"""How a registered nick is protected from users not logged in to its account (chatd.core.enforcement)."""


@dataclass(frozen=True, slots=True)
class PermanentChannel:
    """A channel declared in the config file (``[channels."#name"]``).

    It exists from startup and keeps its topic, modes and history while empty and
    across restarts; ``topic`` and ``modes`` (flags of ``Cimnst``) are what it is
    founded with the first time, before anyone changed them.
    """

    name: str
    topic: str = ""
    modes: str = "nt"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything that shapes the server's behaviour, with the documented defaults.

    Flood control is a token bucket per client: ``flood_burst`` lines at once, then
    ``flood_rate`` lines per second (``flood_rate`` 0 turns it off, for benchmarks).
    Lines beyond the bucket wait in a backlog while the backend stops reading. Each
    line that had to wait counts as excess until the client is calm long enough to
    refill its bucket; past ``flood_excess_limit`` excess lines it is disconnected
    with Excess Flood. So a pasted paragraph is slowed, a flooder is cut.
    """

    name: str = "chatd"
    network: str = "chatd"
    motd_lines: tuple[str, ...] | None = None
    password: str | None = None
    ping_interval_s: float = 120.0
    ping_timeout_s: float = 60.0
    max_clients: int = 10_000
    max_per_ip: int = 32
    per_ip_exempt: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    register_timeout_s: float = 60.0
    flood_burst: int = 10
    flood_rate: float = 4.0
    flood_excess_limit: int = 200
    plain_channel: str = "#lobby"
    """Plain clients talk here; it is always permanent, so the classroom chat keeps its replay."""
    permanent_channels: tuple[PermanentChannel, ...] = ()
    operators: dict[str, str] = field(default_factory=dict)
    """Operator name → scrypt hash of its password (see chatd.core.passwords)."""
    admin_lines: tuple[str, str, str] = ("chatd", "", "")
    """ADMIN replies 257, 258, 259: location, second location line, contact."""
    whowas_size: int = 1000
    history_private: bool = False
    """Keep private messages between two connected users for CHATHISTORY (off: they are never stored)."""
    history_on_join: int = 20
    """How many recent channel messages a joining client is shown (0: none)."""
    created: str = "today"
    nick_enforcement: str = "timeout"
    """One of NICK_ENFORCEMENT_MODES: refuse at once, rename after ``nick_grace_s``, or let be."""
    nick_grace_s: float = 30.0
    account_registration: str = "before-connect"
    """One of ACCOUNT_REGISTRATION_MODES: who may create accounts (REGISTER, NickServ REGISTER) and when."""
    password_min_length: int = 4
    """The shortest password an account may be registered with (or changed to)."""
    isupport_extra: dict[str, str] = field(default_factory=dict)

"""The optional TOML config file (``--config chatd.toml``): option defaults, operators, ADMIN text,
permanent channels.

Precedence: command line, then ``CHATD_*`` environment, then this file, then
built-in defaults. Example::

    [server]                 # any chatd option by its long name
    name = "irc.example.org"
    port = 6667
    no_persist = false       # on/off options take TOML booleans

    [admin]
    location = "Example Org, Berlin"
    contact = "admin@example.org"

    [operators]              # name = scrypt hash from `chatd --hash-password`
    alice = "scrypt$16384$8$1$<salt>$<hash>"

    [channels."#lobby"]      # a permanent channel: exists from startup, keeps topic,
    topic = "Welcome"        # modes and history while empty and across restarts
    modes = "nt"             # letters of Cimnst (default "nt")

The [server] values are returned as written (TOML types intact): the command line
checks them with the same rules as its own values and names the key in its errors.
Every other section is checked here; an error is one line naming the file and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatd.core.config import PermanentChannel
from chatd.protocol.casemap import MAX_CHANNEL_LENGTH, MAX_TOPIC_LENGTH, irc_lower, is_channel_name

CHANNEL_MODES = "Cimnst"
"""The modes a permanent channel can be founded with (no key or limit: those need a value)."""
CHANNEL_KEYS = ("topic", "modes")
ADMIN_KEYS = ("location", "location2", "contact")


class ConfigFileError(Exception):
    """The file is malformed; the message is one line for the user, starting with the file's name."""


class ConfigFileUnreadable(ConfigFileError):
    """The file cannot be read at all; the message says why, without the option that named it."""


@dataclass(frozen=True)
class ConfigFile:
    path: str = ""
    server: dict[str, Any] = field(default_factory=dict)
    """The [server] table as written: keys as the user spelled them, TOML values unconverted."""
    operators: dict[str, str] = field(default_factory=dict)
    admin_lines: tuple[str, str, str] = ("", "", "")
    channels: tuple[PermanentChannel, ...] = ()


def load_config_file(path: str) -> ConfigFile:
    """Read and check ``path``; raises ConfigFileUnreadable or ConfigFileError (one line each)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigFileUnreadable(f"cannot read {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ConfigFileError(f"{path}: not UTF-8 text: {error.reason} at byte {error.start}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"{path}: not valid TOML: {error}") from error
    unknown = set(data) - {"server", "operators", "admin", "channels"}
    if unknown:
        raise ConfigFileError(f"{path}: unknown section(s): {', '.join(sorted(unknown))}")
    for section in ("server", "operators", "admin", "channels"):
        if not isinstance(data.get(section, {}), dict):
            raise ConfigFileError(f"{path}: {section} must be a table ([{section}])")
    operators, admin = data.get("operators", {}), data.get("admin", {})
    for name, value in operators.items():
        if not isinstance(value, str) or not value.startswith("scrypt$"):
            raise ConfigFileError(f"{path}: operator {name!r} needs a scrypt hash (chatd --hash-password)")
    for key, value in admin.items():
        if key not in ADMIN_KEYS:
            raise ConfigFileError(f"{path}: [admin] has no key {key!r} (it has {', '.join(ADMIN_KEYS)})")
        if not isinstance(value, str):
            raise ConfigFileError(f"{path}: [admin] {key}: {value!r} is not text (write it in quotes)")
    return ConfigFile(
        path=path,
        server=dict(data.get("server", {})),
        operators=dict(operators),
        admin_lines=(admin.get("location", ""), admin.get("location2", ""), admin.get("contact", "")),
        channels=parse_channels(path, data.get("channels", {})),
    )


def parse_channels(path: str, tables: dict[str, Any]) -> tuple[PermanentChannel, ...]:
    """The ``[channels."#name"]`` tables as PermanentChannels, in file order.

    Raises ConfigFileError for a bad name, a bad topic or modes, an unknown key, or two
    names that are one channel under the server's case mapping (``#Lobby``, ``#lobby``).
    """
    channels: list[PermanentChannel] = []
    seen: dict[str, str] = {}
    for name, table in tables.items():
        where = f'{path}: [channels."{name}"]'
        if not _is_channel_name(name):
            raise ConfigFileError(
                f"{where}: {name!r} is not a channel name (it starts with #, has at most "
                f"{MAX_CHANNEL_LENGTH} characters, and no spaces, commas, colons or control characters)"
            )
        if not isinstance(table, dict):
            raise ConfigFileError(f'{where}: must be a table (write [channels."{name}"] on a line of its own)')
        key = irc_lower(name)
        if key in seen:
            raise ConfigFileError(f'{where}: is the same channel as [channels."{seen[key]}"] (case does not count)')
        seen[key] = name
        unknown = sorted(table.keys() - set(CHANNEL_KEYS))
        if unknown:
            raise ConfigFileError(f"{where}: has no key {unknown[0]!r} (it has {', '.join(CHANNEL_KEYS)})")
        channels.append(
            PermanentChannel(
                name=name, topic=_topic(where, table.get("topic", "")), modes=_modes(where, table.get("modes", "nt"))
            )
        )
    return tuple(channels)


def _is_channel_name(name: str) -> bool:
    """The server's channel-name rule, and no control character (a name in a file can hold any)."""
    return is_channel_name(name) and not any(ord(char) < 32 or ord(char) == 127 for char in name)


def _topic(where: str, topic: object) -> str:
    if not isinstance(topic, str):
        raise ConfigFileError(f"{where} topic: {topic!r} is not text (write it in quotes)")
    size = len(topic.encode("utf-8"))
    if size > MAX_TOPIC_LENGTH:
        raise ConfigFileError(f"{where} topic: {size} bytes is too long (at most {MAX_TOPIC_LENGTH} bytes in UTF-8)")
    if any(char in topic for char in "\r\n\0"):
        raise ConfigFileError(f"{where} topic: a topic is one line (no line breaks or NUL)")
    return topic


def _modes(where: str, modes: object) -> str:
    if not isinstance(modes, str):
        raise ConfigFileError(f'{where} modes: {modes!r} is not text (write it in quotes, e.g. "nt")')
    letters = modes.removeprefix("+")
    if any(letter not in CHANNEL_MODES for letter in letters):
        raise ConfigFileError(f"{where} modes: {modes!r} has letters other than {CHANNEL_MODES}")
    return "".join(dict.fromkeys(letters))

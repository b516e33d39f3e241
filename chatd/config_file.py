"""The optional TOML config file (``--config chatd.toml``): option defaults, operators, ADMIN text.

Precedence: command line, then ``CHATD_*`` environment, then this file, then
built-in defaults. Example::

    [server]                 # any chatd option by its long name
    name = "irc.example.org"
    port = 6667

    [admin]
    location = "Example Org, Berlin"
    contact = "admin@example.org"

    [operators]              # name = scrypt hash from `chatd --hash-password`
    alice = "scrypt$16384$8$1$<salt>$<hash>"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class ConfigFileError(Exception):
    """The file is missing or malformed; the message is one line for the user."""


@dataclass(frozen=True)
class ConfigFile:
    server: dict[str, str] = field(default_factory=dict)
    operators: dict[str, str] = field(default_factory=dict)
    admin_lines: tuple[str, str, str] = ("", "", "")


def load_config_file(path: str) -> ConfigFile:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigFileError(f"cannot read {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"{path} is not valid TOML: {error}") from error
    unknown = set(data) - {"server", "operators", "admin"}
    if unknown:
        raise ConfigFileError(f"{path}: unknown section(s): {', '.join(sorted(unknown))}")
    server, operators, admin = data.get("server", {}), data.get("operators", {}), data.get("admin", {})
    if not all(isinstance(table, dict) for table in (server, operators, admin)):
        raise ConfigFileError(f"{path}: [server], [operators] and [admin] must be tables")
    for name, value in operators.items():
        if not isinstance(value, str) or not value.startswith("scrypt$"):
            raise ConfigFileError(f"{path}: operator {name!r} needs a scrypt hash (chatd --hash-password)")
    return ConfigFile(
        server={
            key.replace("-", "_"): str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in server.items()
        },
        operators=dict(operators),
        admin_lines=(str(admin.get("location", "")), str(admin.get("location2", "")), str(admin.get("contact", ""))),
    )

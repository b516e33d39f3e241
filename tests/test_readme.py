"""README's two commands are the ones that work: CI runs the test command exactly as README writes it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _two_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, flags=re.DOTALL)


def test_readme_has_two_commands_in_a_venv() -> None:
    start, test = _two_commands()
    for command in (start, test):
        assert "\n" not in command and command.startswith("python3 -m venv .venv && ")
        assert "pip install" in command and "python3 -m pip" not in command  # Debian's python3 is externally managed
    assert start.endswith(".venv/bin/chatd")


def test_ci_runs_the_readme_test_command_exactly() -> None:
    _, test = _two_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines

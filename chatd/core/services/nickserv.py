"""NickServ: register, identify, and protect nicks (``/msg NickServ HELP``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.core.client import Client
    from chatd.core.hub import Hub
    from chatd.core.services import Service


def handle(hub: Hub, client: Client, service: Service, text: str) -> None:
    service.tell(hub, client, "NickServ is not available yet")

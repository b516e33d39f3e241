"""Screenshots of the web client for the README: ``python -m tests.web_screenshots [DIR]``.

Starts chatd in this process with a WebSocket port, sets a scene with IRC users (a topic,
a conversation with a link and a /me, an unread channel, a private message), and saves
``desktop.png`` (1280x800) and ``phone.png`` (390x844) into DIR (default ``docs/web``).
Waits on what the page shows, as the tests do; needs chromium and chromium-driver.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.browser import DESKTOP, PHONE, Browser, missing_browser
from tests.helpers import IrcClient
from tests.test_web_client import page_url, web_server


def main(argv: list[str]) -> int:
    reason = missing_browser()
    if reason:
        print(f"web_screenshots: {reason}", file=sys.stderr)
        return 1
    out = Path(argv[0] if argv else "docs/web")
    out.mkdir(parents=True, exist_ok=True)
    with web_server("selectors", flood_burst=100) as server:
        url = page_url(server)
        carol = IrcClient(server.address, "carol")
        dave = IrcClient(server.address, "dave")
        for client in (carol, dave):
            client.send("JOIN #lobby,#dev")
            client.expect("366")
        carol.send("TOPIC #lobby :Welcome! Be kind. Notes at https://example.org/notes")
        for sender, text in (
            (carol, "morning all"),
            (dave, "morning! did the build pass?"),
            (carol, "yes, logs are at https://ci.example.org/run/42"),
            (dave, "\x01ACTION cheers\x01"),
        ):
            sender.send(f"PRIVMSG #lobby :{text}")
            sender.sync()  # two connections: keep the conversation in the order written here
        desktop, phone = Browser(DESKTOP), Browser(PHONE)
        try:
            desktop.open(url)
            desktop.login("alice", "#lobby, #dev")
            desktop.wait_line("dave cheers")
            phone.open(url)
            phone.login("bob", "#lobby")
            phone.wait_line("dave cheers")
            desktop.click_buffer("#lobby")
            desktop.say("thanks carol, looks green")
            dave.send("PRIVMSG #dev :alice: can you review the websocket branch?")
            carol.send("PRIVMSG #lobby :bob: lunch at noon?")
            dave.send("PRIVMSG alice :got a minute?")
            desktop.wait(lambda _: desktop.buffers().get("dave") == "1!", "dave's private message")
            phone.wait_line("carol bob: lunch at noon?")
            desktop.screenshot(str(out / "desktop.png"), DESKTOP)
            phone.screenshot(str(out / "phone.png"), PHONE, mobile=True)
        finally:
            desktop.close()
            phone.close()
    print(f"wrote {out / 'desktop.png'} and {out / 'phone.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

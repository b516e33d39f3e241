"""The web client in a real browser: headless Chromium against chatd's WebSocket port.

Each test runs over both backends: a browser session costs about a second, the tests
wait on what the page shows (WebDriverWait deadlines), never on sleeps. What must hold:
people in browsers and on IRC talk in channels and in private; the replay on join and
CHATHISTORY scroll-back show older messages; a server restart on the same port is
survived (back-off, rejoin, the typed text kept); network text never becomes markup;
the page needs nothing its Content-Security-Policy forbids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from chatd.backends import BackendSettings
from chatd.core import ServerConfig
from chatd.core.accounts import make_record
from chatd.history import History
from chatd.history.account_store import MemoryAccountStore
from chatd.protocol.casemap import irc_lower
from tests.browser import PHONE, Browser, missing_browser
from tests.helpers import IrcClient, RunningServer, wait_until

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))

XSS_IMG = '<img src=x onerror="window.pwned = 1">'
XSS_SCRIPT = "<script>window.pwned = 2</script>"


@contextmanager
def web_server(
    backend: str, ws_port: int = 0, accounts: MemoryAccountStore | None = None, **config: object
) -> Iterator[RunningServer]:
    """chatd with history and accounts in memory and a WebSocket port (0: a free one), which
    serves the web client from the package (chatd/web)."""
    settings = BackendSettings(
        host="127.0.0.1",
        port=0,
        config=ServerConfig(**config),  # type: ignore[arg-type]
        history=History(None),
        accounts=MemoryAccountStore() if accounts is None else accounts,
        ws_port=ws_port,
    )
    server = RunningServer(backend, settings)
    server.thread.start()
    try:
        yield server
    finally:
        server.stop()


def ws_port_of(server: RunningServer) -> int:
    return server.server.addresses["ws"][1]


def page_url(server: RunningServer) -> str:
    return f"http://127.0.0.1:{ws_port_of(server)}/"


@pytest.fixture
def browsers() -> Iterator[Callable[..., Browser]]:
    """Open browsers on demand; every one is closed, and none may have met a CSP violation."""
    opened: list[Browser] = []

    def open_browser(url: str, size: tuple[int, int] | None = None) -> Browser:
        browser = Browser(size) if size else Browser()
        opened.append(browser)
        browser.open(url)
        return browser

    try:
        yield open_browser
        for browser in opened:
            violations = [e for e in browser.console_errors() if "Content Security Policy" in e]
            assert not violations, violations
    finally:
        for browser in opened:
            browser.close()


def irc_user(server: RunningServer, nick: str, *channels: str) -> IrcClient:
    client = IrcClient(server.address, nick)
    for channel in channels:
        client.send(f"JOIN {channel}")
        client.expect("366")
    return client


def names(client: IrcClient, channel: str) -> set[str]:
    client.send(f"NAMES {channel}")
    found: set[str] = set()
    for message in client.until("366"):
        if message.command == "353":
            found |= {name.lstrip("@+") for name in message.params[-1].split()}
    return found


def test_browsers_and_an_irc_user_talk_in_a_channel(backend: str, browsers: Callable[..., Browser]) -> None:
    with web_server(backend) as server:
        alice = browsers(page_url(server))
        alice.login("alice", "#lobby")
        bob = browsers(page_url(server))
        bob.login("bob", "#lobby")
        carol = irc_user(server, "carol", "#lobby")
        alice.wait(lambda _: alice.nicks() == ["@alice", "bob", "carol"], "alice's nick list with bob and carol")

        carol.send("PRIVMSG #lobby :hello from irc")
        alice.wait_line("carol hello from irc")
        bob.wait_line("carol hello from irc")
        alice.say("hi bob, see https://example.com/page.")
        bob.wait_line("alice hi bob")
        assert carol.expect("PRIVMSG").params == ("#lobby", "hi bob, see https://example.com/page.")
        assert bob.find_all("#messages .line.highlight"), "bob's nick in alice's line highlights it for bob"
        link = bob.find("#messages .line:last-child a")
        assert (link.get_attribute("href"), link.get_attribute("rel"), link.get_attribute("target")) == (
            "https://example.com/page",
            "noopener noreferrer",
            "_blank",
        )
        bob.say("/me waves")
        alice.wait_line("* bob waves")
        assert carol.expect("PRIVMSG").params == ("#lobby", "\x01ACTION waves\x01")

        # The join box, a topic, and the nick list kept up to date by JOIN, NICK, MODE, PART and QUIT.
        carol.send("JOIN #side")
        carol.send("TOPIC #side :plans for https://example.org")
        carol.expect("TOPIC")
        alice.find("#join").send_keys("#side\n")
        alice.wait(lambda _: alice.active() == "#side", "#side in view after the join box")
        alice.wait(lambda _: alice.find("#topic").text == "plans for https://example.org", "the topic")
        alice.wait(lambda _: alice.nicks() == ["@carol", "alice"], "the nick list of #side")
        carol.send("NICK carola")
        alice.wait(lambda _: alice.nicks() == ["@carola", "alice"], "carol renamed in the nick list")
        carol.send("MODE #side +v alice")
        alice.wait(lambda _: alice.nicks() == ["@carola", "+alice"], "alice voiced")
        carol.send("PRIVMSG #side :still here")
        alice.wait_line("carola still here")
        alice.say("/part")
        alice.wait(lambda _: "#side" not in alice.buffers(), "#side gone from alice's list")
        assert carol.expect("PART").source.startswith("alice!")
        carol.send("QUIT :bye")
        alice.click_buffer("#lobby")
        alice.wait(lambda _: alice.nicks() == ["@alice", "bob"], "carola gone after QUIT")
        alice.wait_line("carola quit")


def test_a_message_taken_back_reads_as_deleted(backend: str, browsers: Callable[..., Browser]) -> None:
    with web_server(backend) as server:
        alice = browsers(page_url(server))
        alice.login("alice", "#lobby")
        carol = irc_user(server, "carol", "#lobby")
        carol.send("CAP REQ :message-tags echo-message")
        carol.expect("CAP")
        alice.wait(lambda _: alice.nicks() == ["@alice", "carol"], "carol in alice's nick list")
        carol.send("PRIVMSG #lobby :I regret this")
        msgid = carol.expect("PRIVMSG").tags["msgid"]
        alice.wait_line("carol I regret this")
        carol.send(f"REDACT #lobby {msgid} :sorry")
        alice.wait_line("(message deleted by carol: sorry)")
        assert not any("I regret this" in line for line in alice.lines())


def test_private_conversations_between_browsers_and_irc(backend: str, browsers: Callable[..., Browser]) -> None:
    with web_server(backend) as server:
        alice = browsers(page_url(server))
        alice.login("alice", "#lobby")
        bob = browsers(page_url(server))
        bob.login("bob", "#lobby")
        carol = irc_user(server, "carol", "#lobby")

        carol.send("PRIVMSG alice :psst, alice")
        alice.wait(lambda _: alice.buffers().get("carol") == "1!", "an unread, highlighted conversation with carol")
        alice.click_buffer("carol")
        alice.wait_line("carol psst, alice")
        alice.say("got it")
        assert carol.expect("PRIVMSG").params == ("carol", "got it")

        # Clicking a nick in the nick list opens a conversation; /msg opens one too.
        bob.wait(lambda _: "@alice" in bob.nicks(), "alice in bob's nick list")
        bob.find('#nicks button.nick[data-nick="alice"]').click()
        bob.wait(lambda _: bob.active() == "alice", "the conversation with alice")
        bob.say("hey alice, bob here")
        alice.wait(lambda _: alice.buffers().get("bob") == "1!", "bob's message waiting for alice")
        alice.say("/msg bob hello bob")
        alice.wait(lambda _: alice.active() == "bob", "/msg switched to bob")
        alice.wait_line("bob hey alice, bob here")
        bob.wait_line("alice hello bob")


def test_history_on_join_and_scroll_back(backend: str, browsers: Callable[..., Browser]) -> None:
    with web_server(backend, flood_burst=100) as server:
        carol = irc_user(server, "carol", "#old")
        for number in range(30):
            carol.send(f"PRIVMSG #old :old message {number}")
        carol.sync()
        alice = browsers(page_url(server))
        alice.login("alice", "#old")
        alice.wait_line("carol old message 29")
        lines = alice.lines()
        assert "carol old message 10" in lines and "carol old message 9" not in lines, "the last 20 are replayed"
        # Scrolling to the top asks for the page before (CHATHISTORY BEFORE).
        alice.driver.execute_script(
            "const box = document.getElementById('messages'); box.scrollTop = 0;box.dispatchEvent(new Event('scroll'));"
        )
        alice.wait_line("carol old message 0")
        lines = alice.lines()
        olds = [line for line in lines if line.startswith("carol old message")]
        assert olds == [f"carol old message {n}" for n in range(30)], "in order, without duplicates"


def test_reconnect_after_a_restart_keeps_the_typed_text_and_rejoins(
    backend: str, browsers: Callable[..., Browser]
) -> None:
    with web_server(backend) as first:
        port = ws_port_of(first)
        alice = browsers(page_url(first))
        alice.login("alice", "#lobby, #room")
        alice.wait(lambda _: set(alice.buffers()) >= {"#lobby", "#room"}, "both channels joined")
        alice.type("half a thought", enter=False)
    # The first server is gone: the page retries after 1 s, fails, and doubles the delay.
    alice.wait(lambda _: "reconnecting in 2 s" in alice.find("#status").text, "a second, longer back-off")
    with web_server(backend, ws_port=port) as second:
        carol = irc_user(second, "carol")
        wait_until(lambda: "alice" in names(carol, "#room"), "alice back in #room", timeout=15)
        carol.send("JOIN #lobby")
        carol.expect("366")
        assert "alice" in names(carol, "#lobby")
        alice.wait(lambda _: alice.find("#status").text == "alice", "the status back to the nick")
        assert alice.find("#input").get_attribute("value") == "half a thought"
        carol.send("PRIVMSG #lobby :welcome back")
        alice.wait_line("carol welcome back")
        alice.find("#input").send_keys(" finished\n")
        assert carol.expect("PRIVMSG").params == ("#lobby", "half a thought finished")


def test_network_text_is_shown_as_text_never_as_markup(backend: str, browsers: Callable[..., Browser]) -> None:
    with web_server(backend) as server:
        carol = irc_user(server, "carol", "#lobby")  # first in, so carol may set the topic
        alice = browsers(page_url(server))
        alice.login("alice", "#lobby")
        alice.wait(lambda _: alice.nicks() == ["@carol", "alice"], "alice in #lobby")
        carol.send(f"PRIVMSG #lobby :{XSS_IMG}")
        carol.send(f"PRIVMSG #lobby :{XSS_SCRIPT}")
        carol.send("PRIVMSG #lobby :javascript:alert(1) and data:text/html,<b>x</b> are not links")
        carol.send(f"TOPIC #lobby :{XSS_IMG}")
        carol.send(f"PRIVMSG alice :{XSS_IMG}")
        alice.wait_line(f"carol {XSS_IMG}")
        alice.wait_line(f"carol {XSS_SCRIPT}")
        alice.wait_line("carol javascript:alert(1)")
        alice.wait(lambda _: alice.find("#topic").text == XSS_IMG, "the topic, as text")
        alice.wait(lambda _: "carol" in alice.buffers(), "the private message's buffer")
        alice.click_buffer("carol")
        alice.wait_line(f"carol {XSS_IMG}")
        created = alice.driver.execute_script(
            "return document.querySelectorAll('#messages img, #messages script, #topic img, #messages b').length"
        )
        assert created == 0
        assert alice.find_all("#messages a") == [] and alice.find_all("#topic a") == []
        assert alice.driver.execute_script("return window.pwned === undefined")


def test_sasl_login_shows_the_failure_reason_then_logs_in(backend: str, browsers: Callable[..., Browser]) -> None:
    accounts = MemoryAccountStore()
    accounts.create_account(irc_lower("dana"), make_record("dana", "correct horse"))
    with web_server(backend, accounts=accounts) as server:
        dana = browsers(page_url(server))
        dana.login("dana", "#lobby", account="dana", password="wrong")
        dana.wait(lambda _: "failed" in dana.find("#login-error").text.lower(), "the 904 reason on the form")
        assert not dana.find("#chat").is_displayed()
        dana.find("#password").clear()
        dana.find("#password").send_keys("correct horse")
        dana.find("#connect").click()
        dana.wait(lambda _: dana.find("#status").text == "dana (dana)", "logged in as dana")
        carol = irc_user(server, "carol")
        carol.send("WHOIS dana")
        assert any(m.command == "330" and m.params[2] == "dana" for m in carol.until("318"))


def test_a_phone_sized_screen_toggles_the_channel_list(backend: str, browsers: Callable[..., Browser]) -> None:
    with web_server(backend) as server:
        alice = browsers(page_url(server), PHONE)
        alice.login("alice", "#lobby, #second")
        alice.wait(lambda _: alice.active() == "#lobby", "the first channel in view")
        alice.wait(lambda _: "#second" in alice.buffers(), "the second channel joined")
        assert not alice.find("#side").is_displayed()
        alice.find("#toggle-buffers").click()
        alice.wait(lambda _: alice.find("#side").is_displayed(), "the channel list shown")
        alice.click_buffer("#second")
        alice.wait(lambda _: not alice.find("#side").is_displayed(), "the channel list hidden after a choice")
        width = alice.driver.execute_script("return document.getElementById('messages').getBoundingClientRect().width")
        assert width > 300, "the messages use the whole width"

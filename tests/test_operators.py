"""OPER with hashed credentials from the config, KILL, WALLOPS, user modes — both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatd.core.passwords import hash_password, verify_password
from chatd.protocol import numerics as n
from tests.helpers import RunningServer, running_server

PASSWORD = "correct horse"


@pytest.fixture
def oper_server(backend: str) -> Iterator[RunningServer]:
    with running_server(backend, operators={"boss": hash_password(PASSWORD)}) as server:
        yield server


def test_password_hashes() -> None:
    stored = hash_password("pw")
    assert stored.startswith("scrypt$") and "pw" not in stored
    assert verify_password("pw", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("pw", "scrypt$garbage")


def test_hashes_name_their_parameters_so_older_ones_still_verify() -> None:
    import hashlib

    assert hash_password("x").startswith("scrypt$16384$8$5$")  # OWASP's 16 MiB form
    salt = bytes(range(16))
    older = hashlib.scrypt(b"sesame", salt=salt, n=2**14, r=8, p=1, dklen=32)  # what p=1 versions stored
    stored = f"scrypt$16384$8$1${salt.hex()}${older.hex()}"
    assert verify_password("sesame", stored) and not verify_password("sesam", stored)


def test_oper_grants_o_and_errors(oper_server: RunningServer) -> None:
    client = oper_server.client("wannabe")
    client.send("OPER nobody x")
    assert client.expect(n.ERR_NOOPERHOST)
    client.send("OPER boss wrong")
    assert client.expect(n.ERR_PASSWDMISMATCH)
    client.send(f"OPER boss :{PASSWORD}")
    assert client.expect("MODE").params == ("wannabe", "+o")
    assert client.expect(n.RPL_YOUREOPER)
    client.send("MODE wannabe")
    assert client.expect(n.RPL_UMODEIS).params[1] == "+o"
    client.send("MODE wannabe +o")
    assert client.expect(n.ERR_UMODEUNKNOWNFLAG)  # +o only through OPER
    watcher = oper_server.client("watcher")
    watcher.send("WHOIS wannabe")
    assert watcher.expect(n.RPL_WHOISOPERATOR).params[1:] == ("wannabe", "is an IRC operator")
    client.send("MODE wannabe -o")
    assert client.expect("MODE").params == ("wannabe", "-o")
    watcher.send("WHOIS wannabe")
    assert n.RPL_WHOISOPERATOR not in [m.command for m in watcher.until(n.RPL_ENDOFWHOIS)]


def test_kill_and_wallops_need_operator(oper_server: RunningServer) -> None:
    boss = oper_server.client("boss")
    victim = oper_server.client("victim")
    watcher = oper_server.client("watcher")
    for client in (victim, watcher):
        client.send("JOIN #k")
        client.until("366")
    victim.send("KILL watcher :no")
    assert victim.expect(n.ERR_NOPRIVILEGES)
    victim.send("WALLOPS :hello")
    assert victim.expect(n.ERR_NOPRIVILEGES)
    boss.send(f"OPER boss :{PASSWORD}")
    boss.expect(n.RPL_YOUREOPER)
    watcher.send("MODE watcher +w")
    assert watcher.expect("MODE").params == ("watcher", "+w")
    boss.send("WALLOPS :maintenance at noon")
    wallops = watcher.expect("WALLOPS")
    assert wallops.source.startswith("boss!") and wallops.params == ("maintenance at noon",)
    boss.send("KILL victim :spamming")
    closing = victim.wait_closed()
    assert any(line.startswith(":boss!") and " KILL victim " in line for line in closing)
    assert any(line.startswith("ERROR") and "Killed (boss (spamming))" in line for line in closing)
    assert watcher.expect("QUIT").params == ("Killed (boss (spamming))",)
    boss.send("KILL ghost :x")
    assert boss.expect(n.ERR_NOSUCHNICK)

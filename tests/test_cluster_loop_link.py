"""What only the loop link has to keep: it runs the node's callbacks on the server's own loop.

A bug in one of them must cost that one event, never the loop: with the bridge, each callback
ran through ``post``, which logs and goes on; on the loop nothing else would catch it.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import REDIS_SERVER, wait_until
from tests.test_cluster_link import Replies, Servers, running_link

pytestmark = pytest.mark.skipif(
    not os.path.exists(REDIS_SERVER), reason="redis-server is not installed (apt-get install redis-server)"
)


def test_a_failing_callback_costs_its_own_reply_only(redis: Servers) -> None:
    with running_link(redis, "loop") as (link, recorder):

        def broken(reply: object) -> None:
            raise RuntimeError("a bug in the node")

        after = Replies()
        assert link.command("INCR", "{t}:broken", callback=broken)
        assert link.command("INCR", "{t}:broken", callback=after.callback(0))
        wait_until(lambda: after.all(1), "the reply after the failing callback")
        assert after.got == {0: [2]}
        assert link.command("INCR", "{t}:broken", callback=after.callback(1))
        wait_until(lambda: after.all(2), "a later command's reply")
        assert after.got[1] == [3] and recorder.events == ["up"]
    # running_link's stop re-raises anything that escaped onto the loop: nothing did

"""ngircd's own network for the cluster scenarios: N ngircd processes joined by IRC server links.

It is the reference for what spreading one channel's members over several servers costs in
C, on the same machine and load as chatd's nodes over Redis: every server that has members
in the channel receives each message over a link, parses it and fans it out to its own
members, as a chatd node does with a stream entry. The cluster rows of ``ngircd`` compare N
linked ngircd with one ngircd alone, exactly as chatd's rows compare N nodes with one chatd.

The network is a star: node 0 accepts a link from each other node (which connects to node
0's client port), so every message crosses at most two links, and a leaf's message reaches
the other leaves through node 0, as in any IRC network's spanning tree. Each server link has
its own password. There is no Redis: ``side_pids`` is empty and no Redis figures are made.
"""

from __future__ import annotations

import contextlib
import re

from bench.cluster import ServerNodes
from bench.contenders import HOST, NGIRCD_LINK, Contender, NgircdNode, RunningServer


def server_name(index: int) -> str:
    return f"bench-{index}.local"


def _link(index: int, password: str, connect_to: int | None) -> str:
    port = "" if connect_to is None else f"Port = {connect_to}\n"
    return NGIRCD_LINK.format(name=server_name(index), host=HOST, port=port, password=password)


class LinkedNgircd(ServerNodes):
    """``nodes`` ngircd servers linked in a star, looking to the scenarios like ClusterServers
    without Redis; they are ready once every link is up (a user of each is visible from node 0)."""

    def __init__(self, contender: Contender, sendq_bytes: int, nodes: int) -> None:
        self.contender = contender
        self.nodes: list[RunningServer] = []
        try:
            leaves = range(1, nodes)
            hub_links = "".join(_link(leaf, f"link-{leaf}", None) for leaf in leaves)
            hub = RunningServer(contender, sendq_bytes, ngircd=NgircdNode(server_name(0), hub_links))
            self.nodes.append(hub)
            for leaf in leaves:
                links = _link(0, f"link-{leaf}", hub.port)
                self.nodes.append(RunningServer(contender, sendq_bytes, ngircd=NgircdNode(server_name(leaf), links)))
        except BaseException:
            self.stop()
            raise

    @property
    def side_pids(self) -> list[int]:
        return []

    def alive(self) -> bool:
        return all(node.alive() for node in self.nodes)

    def log_tail(self) -> str:
        return "; ".join(f"node {i}: {node.log_tail()}" for i, node in enumerate(self.nodes) if not node.alive())

    def warnings(self) -> list[str]:
        """What the servers logged about the links they lost (``Server "…" unregistered``, with
        the reason): a lost link is a netsplit, and what was queued on it is gone, which is
        why a linked row lost messages."""
        said = []
        for index, node in enumerate(self.nodes):
            with contextlib.suppress(OSError):
                for line in node.log_path.read_text(errors="replace").splitlines():
                    if found := re.search(r'Server ".*" unregistered.*', line):
                        said.append(f"node {index}: {found.group(0)}")
        return said[:3]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

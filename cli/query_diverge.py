"""``phalanx query diverge URL_A URL_B``: the first height, and transaction, where two nodes differ.

How it works
------------
On a node, the post-state of block ``k`` below its head is the ``state_root`` of its own block
``k + 1`` (a node commits a block only if that root is its own state), and the post-state of its
head is its status' ``latest_state_root``. Post-states are chained, so once two nodes differ
they differ at every later height: :func:`node.diverge.first_divergence` bisects the heights both
nodes hold (from the higher ``earliest_block_height``, or ``--from``, to the lower head) in
O(log n) ``block`` calls.

At the first diverging height ``k`` the command compares the two blocks' hashes: different
hashes are a *fork* (the nodes committed different blocks), the same hash an *execution
divergence* (the same block gave different results). For the latter, the block's transactions
are compared one by one through each node's ``tx`` method (which returns the receipt): the first
index whose receipts differ is printed with both receipts, or "receipts agree; the state writes
differ" when none does.

Exit codes: 0 no divergence, 1 a divergence found, 2 usage or connection errors (a node that
does not answer, a pruned block, no height in common).

Called by :mod:`cli.cmd_query` (``register_diverge``); :func:`compare` takes any two objects
with the :class:`~node.client.RpcClient` read methods (tests pass fakes).
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from cli._output import add_json_option, emit, print_fields

__all__ = ["NodeReader", "compare", "register_diverge"]


class NodeReader(Protocol):
    """What :func:`compare` needs from a node (an :class:`~node.client.RpcClient` has it)."""

    def status(self) -> Any: ...
    def block(self, height: int | None = None) -> Any: ...
    def tx(self, tx_hash: str) -> Any: ...


def register_diverge(sub: Any) -> None:
    """Add ``phalanx query diverge`` to the ``query`` subcommands."""
    d = sub.add_parser(
        "diverge", help="find the first height and transaction where two nodes' states differ",
        description="Bisect the heights two nodes hold for the first one whose post-states "
        "differ, then tell a fork from an execution divergence and find the first transaction "
        "whose receipts differ. Exit 0: no divergence; 1: divergence found; 2: error.")
    d.add_argument("url_a", metavar="URL_A", help="the first node's RPC URL")
    d.add_argument("url_b", metavar="URL_B", help="the second node's RPC URL")
    d.add_argument("--from", dest="start", type=int, default=0, metavar="H",
                   help="lowest height to compare (default: the lowest both nodes hold)")
    d.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    add_json_option(d)
    d.set_defaults(func=_diverge)


def _diverge(args: argparse.Namespace) -> int:
    from cli import _output
    from cli.main import CliError
    from node.client import RpcClient, RpcClientError
    from node.diverge import DivergenceError

    if args.start < 0:
        raise CliError(f"--from must be >= 0, got {args.start}")
    clients = []
    try:
        for url in (args.url_a, args.url_b):
            try:
                clients.append(RpcClient(url, timeout=args.timeout, catch_up_timeout=args.timeout,
                                         transport=_output.client_transport))
            except ValueError as e:
                raise CliError(f"{url!r}: {e}") from None
        try:
            report = compare(clients[0], clients[1], args.start,
                             urls=(clients[0].urls[0], clients[1].urls[0]))
        except RpcClientError as e:
            raise CliError(e.message if e.url and e.url in e.message else
                           f"{e.url or 'node'}: {e.message}") from None
        except DivergenceError as e:
            raise CliError(str(e)) from None
    finally:
        for c in clients:
            c.close()
    emit(args, report, lambda: print_report(report))
    return 1 if report["height"] is not None else 0


class _Lookups:
    """Each node's span and its post-state lookups (RPC errors name the node and height)."""

    def __init__(self, nodes: tuple[NodeReader, NodeReader], urls: tuple[str, str]) -> None:
        self.nodes = nodes
        self.urls = urls
        self.status = [_checked(urls[i], n.status(), "status") for i, n in enumerate(nodes)]
        self.heads = [int(s["latest_block_height"]) for s in self.status]
        self.floors = [int(s.get("earliest_block_height") or 0) for s in self.status]

    def block(self, node: int, height: int) -> dict[str, Any]:
        from node.client import RpcClientError

        try:
            return _checked(self.urls[node], self.nodes[node].block(height), "block")
        except RpcClientError as e:
            raise RpcClientError(
                e.code, f"{self.urls[node]}: cannot read block {height}: {e.message} (a node "
                f"keeps blocks from its earliest_block_height on; pass --from above it)",
                url=self.urls[node]) from None

    def post_state(self, node: int, height: int) -> bytes:
        if height == self.heads[node]:
            root = self.status[node]["latest_state_root"]
        else:
            root = self.block(node, height + 1)["state_root"]
        return str(root).encode()

    def receipt(self, node: int, tx_hash: str) -> dict[str, Any]:
        from node.client import RpcClientError

        try:
            found = _checked(self.urls[node], self.nodes[node].tx(tx_hash), "tx")
        except RpcClientError as e:
            raise RpcClientError(e.code, f"{self.urls[node]}: transaction {tx_hash}: "
                                 f"{e.message}", url=self.urls[node]) from None
        receipt: dict[str, Any] = found.get("receipt") or {}
        return receipt


def _checked(url: str, answer: Any, method: str) -> dict[str, Any]:
    from node.client import BAD_RESPONSE, RpcClientError

    if not isinstance(answer, dict):
        raise RpcClientError(BAD_RESPONSE, f"{url}: {method} answer is not an object", url=url)
    return answer


def compare(a: NodeReader, b: NodeReader, start: int = 0, *,
            urls: tuple[str, str] = ("A", "B")) -> dict[str, Any]:
    """Find and explain the first divergence between two nodes.

    Args:
        a, b: the two nodes' readers.
        start: the lowest height to compare.
        urls: how the report names the nodes.

    Returns:
        The report (printed as JSON with ``--json``): ``nodes`` (url, floor, head),
        ``compared`` (from, to), ``lookups``, ``height`` (None: no divergence), ``kind``
        (``fork``, ``execution`` or ``genesis``), ``block_hashes``, ``transactions``,
        ``first_differing_tx`` (index, hash, fields, receipts) and ``notes``.

    Raises:
        RpcClientError: a node failed to answer (naming it and what was asked).
        DivergenceError: the nodes hold no height in common.
    """
    from node.diverge import first_divergence

    look = _Lookups((a, b), urls)
    spans = list(zip(look.floors, look.heads, strict=True))
    found = first_divergence(look.post_state, spans, start)
    notes: list[str] = []
    for i in (0, 1):
        if look.floors[i] > start and look.floors[i] == found.low:
            notes.append(f"{urls[i]} keeps blocks from {look.floors[i]} on (earlier ones are "
                         f"pruned): compared from {found.low}")
    report: dict[str, Any] = {
        "nodes": [{"url": urls[i], "floor": look.floors[i], "head": look.heads[i]}
                  for i in (0, 1)],
        "compared": {"from": found.low, "to": found.high},
        "lookups": found.lookups,
        "height": found.height,
        "kind": None,
        "block_hashes": None,
        "transactions": None,
        "first_differing_tx": None,
        "notes": notes,
    }
    k = found.height
    if k is None:
        return report
    if found.at_low and k > 0:
        notes.append(f"the states differ already at {k}, the lowest height compared: they may "
                     "have diverged earlier")
    if k == 0:
        report["kind"] = "genesis"
        return report
    blocks = [look.block(0, k), look.block(1, k)]
    report["block_hashes"] = [blocks[0].get("hash"), blocks[1].get("hash")]
    if blocks[0].get("hash") != blocks[1].get("hash"):
        report["kind"] = "fork"
        return report
    report["kind"] = "execution"
    txs = blocks[0].get("txs") or []
    report["transactions"] = len(txs)
    for index, tx in enumerate(txs):
        tx_hash = str(tx.get("hash") if isinstance(tx, dict) else tx)
        receipts = [look.receipt(0, tx_hash), look.receipt(1, tx_hash)]
        if receipts[0] != receipts[1]:
            fields = sorted(f for f in set(receipts[0]) | set(receipts[1])
                            if receipts[0].get(f) != receipts[1].get(f))
            report["first_differing_tx"] = {"index": index, "hash": tx_hash, "fields": fields,
                                            "receipts": receipts}
            break
    return report


def print_report(report: dict[str, Any]) -> None:
    """The report for people."""
    a, b = report["nodes"]
    span = report["compared"]
    print(f"compared heights {span['from']}..{span['to']} in {report['lookups']} lookups "
          f"(A {a['url']}: blocks {a['floor']}..{a['head']}; "
          f"B {b['url']}: blocks {b['floor']}..{b['head']})")
    for note in report["notes"]:
        print(f"note: {note}")
    k = report["height"]
    if k is None:
        print(f"no divergence up to height {span['to']}")
        return
    print(f"first diverging height: {k} (the states after block {k} differ)")
    kind = report["kind"]
    if kind == "genesis":
        print("the genesis states differ: the nodes run different chains or genesis files")
        return
    hash_a, hash_b = report["block_hashes"]
    if kind == "fork":
        print(f"block {k} differs: A {hash_a}, B {hash_b}: a fork (the nodes committed "
              "different blocks), not an execution divergence")
        return
    print(f"block {k} is the same on both nodes ({hash_a}): an execution divergence "
          f"({report['transactions']} transactions)")
    diff = report["first_differing_tx"]
    if diff is None:
        print("receipts agree; the state writes differ")
        return
    print(f"first differing transaction: index {diff['index']} ({diff['hash']}), "
          f"receipts differ in {', '.join(diff['fields'])}")
    for name, receipt in zip(("A", "B"), diff["receipts"], strict=True):
        print(f"  receipt at {name}:")
        print_fields(receipt, indent="    ",
                     order=("status", "success", "gas_used", "fee_paid", "reason"))

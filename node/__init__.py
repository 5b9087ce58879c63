"""node: the composition root of a Phalanx validator.

``node.runtime.run_node(config)`` wires, in one Trio nursery: the LevelDB ledger and the
chain application (:mod:`node.app`), the consensus engine (:mod:`node.engines`) run by the
driver (:mod:`node.driver`, persisting to the WAL of :mod:`node.wal` before sending), p2p
(peers, transaction gossip, heartbeats), block sync (:mod:`node.sync`), and the HTTP API
(:mod:`node.api` serving the methods of :mod:`node.rpc_methods`), with metrics
(:mod:`node.metrics`) and JSON-lines logs (:mod:`node.logs`). Configuration comes from
``config.toml`` (:mod:`node.config`); clients use :mod:`node.client`.
"""

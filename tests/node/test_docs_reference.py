"""docs/node.md stays true to the code: the reference tables are checked both ways.

The sets come from the code by introspection: config sections and keys from the
``NodeConfig`` dataclasses (with their defaults), JSON-RPC methods from ``RpcNode.methods()``,
error codes from the constants of ``node.jsonrpc`` and ``node.rpc_methods``, mempool refusal
reasons from ``RejectReason``, metrics from the collectors registered by ``NodeMetrics``. The
names on the other side come from the first column of the tables under the matching headings
of docs/node.md, so a row for a method, key or metric that no longer exists fails too.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chain.mempool import RejectReason
from node import jsonrpc, rpc_methods
from node.config import NodeConfig
from node.metrics import NodeMetrics
from node.rpc_methods import RpcNode

DOC = Path(__file__).resolve().parents[2] / "docs" / "node.md"
_CELL = re.compile(r"^\|\s*`([^`]+)`\s*\|")


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of any level."""
    lines = _doc().splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        pytest.fail(f"docs/node.md has no heading {heading!r}")
    body: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        body.append(line)
    return "\n".join(body)


def _rows(heading: str) -> dict[str, list[str]]:
    """Table rows under ``heading``: first-column name (in backticks) -> all cells."""
    rows: dict[str, list[str]] = {}
    for line in _section(heading).splitlines():
        m = _CELL.match(line)
        if m:
            name = m.group(1)
            assert name not in rows, f"{heading}: {name} documented twice"
            rows[name] = [c.strip() for c in line.strip().strip("|").split("|")]
    return rows


def _config_sections() -> dict[str, Any]:
    config = NodeConfig(home=Path("unused"))
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "home"}


def test_every_config_section_has_a_table_with_exactly_its_keys() -> None:
    sections = _config_sections()
    assert {"node", "p2p", "rpc", "consensus", "mempool", "storage", "testing"} <= set(sections)
    for name, section in sections.items():
        keys = {f.name for f in dataclasses.fields(section)}
        documented = set(_rows(f"### `[{name}]`"))
        assert documented == keys, (
            f"[{name}]: missing from docs {sorted(keys - documented)}, "
            f"documented but not in the code {sorted(documented - keys)}")


def test_documented_config_defaults_and_scopes_match_the_code() -> None:
    for name, section in _config_sections().items():
        rows = _rows(f"### `[{name}]`")
        for f in dataclasses.fields(section):
            _key, _type, default_cell, scope, _meaning = rows[f.name]
            literal = default_cell.strip("`")
            documented = tomllib.loads(f"v = {literal}")["v"]
            actual = getattr(section, f.name)
            expected = list(actual) if isinstance(actual, tuple) else actual
            assert documented == expected and type(documented) is type(expected), (
                f"{name}.{f.name}: docs say {literal}, the code's default is {expected!r}")
            assert scope in ("all", "node"), f"{name}.{f.name}: scope {scope!r}"


def test_the_config_file_init_writes_has_the_documented_sections(tmp_path: Path) -> None:
    written = tomllib.loads(NodeConfig(home=tmp_path).to_toml())
    for name, keys in written.items():
        assert set(keys) == set(_rows(f"### `[{name}]`")), name


def test_every_jsonrpc_method_is_documented_and_every_documented_one_exists() -> None:
    # methods() only binds handlers, so an instance without parts is enough to list them.
    methods = set(RpcNode.__new__(RpcNode).methods())
    assert {"status", "net_info", "evidence", "broadcast_tx_commit"} <= methods
    documented = set(_rows("### Methods"))
    assert documented == methods, (
        f"missing from docs {sorted(methods - documented)}, "
        f"documented but not served {sorted(documented - methods)}")


def _error_constants() -> dict[str, int]:
    out: dict[str, int] = {}
    for module, names in ((jsonrpc, jsonrpc.__all__), (rpc_methods, rpc_methods.__all__)):
        for name in names:
            value = getattr(module, name)
            if isinstance(value, int) and name.isupper():
                out[name] = value
    return out


def test_every_error_code_is_documented_with_its_name() -> None:
    constants = _error_constants()
    assert {"PARSE_ERROR", "NOT_FOUND", "TX_REJECTED"} <= set(constants)
    rows = _rows("### Error codes")
    documented = {int(code): cells[1].strip("`") for code, cells in rows.items()}
    assert documented == {code: name for name, code in constants.items()}


def test_every_mempool_refusal_reason_is_documented() -> None:
    reasons = {r.value for r in RejectReason}
    documented = set(_rows("### Transaction refusal reasons"))
    assert documented == reasons, (
        f"missing {sorted(reasons - documented)}, unknown {sorted(documented - reasons)}")


def _exposed_metrics() -> dict[str, str]:
    """Exposed metric name -> Prometheus type, for every collector NodeMetrics registers."""
    out: dict[str, str] = {}
    for family in NodeMetrics().registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = family.type
    return out


def test_every_metric_is_documented_with_its_type_and_every_documented_one_exists() -> None:
    exposed = _exposed_metrics()
    assert "phalanx_consensus_height" in exposed
    rows = _rows("## Metrics")
    assert set(rows) == set(exposed), (
        f"missing from docs {sorted(set(exposed) - set(rows))}, "
        f"documented but not registered {sorted(set(rows) - set(exposed))}")
    for name, cells in rows.items():
        assert cells[1] == exposed[name], f"{name}: docs say {cells[1]}, registry says {exposed[name]}"


def test_documented_metric_labels_are_the_ones_exposed() -> None:
    metrics = NodeMetrics()
    wrappers = {family.name: m for m in vars(metrics).values() if hasattr(m, "describe")
                for family in m.describe()}
    families = {f.name: f for f in metrics.registry.collect()}
    for name, cells in _rows("## Metrics").items():
        base = name.removesuffix("_total") if cells[1] == "counter" else name
        labels = [c.strip("` ") for c in cells[2].split(",") if c.strip()]
        if labels:
            # prometheus_client refuses a label set that differs from the declared one.
            wrappers[base].labels(**{label: "0" for label in labels})
        else:
            # An unlabelled metric exposes its series at once; a labelled one has none yet.
            plain = [s for s in families[base].samples if set(s.labels) <= {"le"}]
            assert plain, f"{name}: documented without labels, but the code declares some"

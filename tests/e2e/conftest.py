"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testnet.local import Testnet


@pytest.fixture
def testnet_dir(tmp_path: Path) -> Iterator[Path]:
    """Where a test's ``phalanx testnet`` lives; whatever happened, no process outlives it."""
    directory = tmp_path / "net"
    yield directory
    if (directory / "testnet.json").exists():
        Testnet.open(directory).stop()

"""The consensus write-ahead log: durability, torn tails, loud corruption, compaction."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from node.wal import MAGIC, WalCorrupted, WalError, WriteAheadLog


def test_records_survive_reopen_in_order(tmp_path: Path) -> None:
    path = tmp_path / "wal" / "consensus.wal"
    with WriteAheadLog(path) as wal:
        wal.append([b"vote-1", b"vote-2"])
        wal.append([b"view-3"])
    with WriteAheadLog(path) as wal:
        assert wal.records() == [b"vote-1", b"vote-2", b"view-3"]
        assert wal.truncated_bytes == 0


@pytest.mark.parametrize("cut", [1, 3, 7, 8, 9, 12])
def test_torn_final_record_is_cut_and_earlier_records_kept(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "c.wal"
    with WriteAheadLog(path) as wal:
        wal.append([b"first", b"second-record"])
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - cut)
    with WriteAheadLog(path) as wal:
        assert wal.records() == [b"first"]
        assert wal.truncated_bytes > 0
        wal.append([b"third"])
    with WriteAheadLog(path) as wal:
        assert wal.records() == [b"first", b"third"]


def test_bad_checksum_on_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    with WriteAheadLog(path) as wal:
        wal.append([b"aaaa", b"bbbb"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with WriteAheadLog(path) as wal:
        assert wal.records() == [b"aaaa"]


def test_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    with WriteAheadLog(path) as wal:
        wal.append([b"aaaa"])
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    with WriteAheadLog(path) as wal:
        assert wal.records() == [b"aaaa"]


def test_damage_before_the_last_record_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    with WriteAheadLog(path) as wal:
        wal.append([b"aaaa", b"bbbb", b"cccc"])
    data = bytearray(path.read_bytes())
    data[len(MAGIC) + 8] ^= 0x01  # first payload byte
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupted, match="offset 4"):
        WriteAheadLog(path)


def test_impossible_length_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    with WriteAheadLog(path) as wal:
        wal.append([b"aaaa", b"bbbb"])
    data = bytearray(path.read_bytes())
    data[len(MAGIC) : len(MAGIC) + 4] = (2**31).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupted, match="impossible length"):
        WriteAheadLog(path)


def test_foreign_file_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    path.write_bytes(b"not a wal at all")
    with pytest.raises(WalCorrupted, match="bad magic"):
        WriteAheadLog(path)


def test_empty_record_is_refused(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path / "c.wal") as wal, pytest.raises(WalError):
        wal.append([b""])


def test_compact_keeps_only_given_records(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    with WriteAheadLog(path) as wal:
        wal.append([b"old-1", b"old-2", b"new-1"])
        wal.compact([b"new-1"])
        wal.append([b"new-2"])
    with WriteAheadLog(path) as wal:
        assert wal.records() == [b"new-1", b"new-2"]
    assert not path.with_suffix(".wal.tmp").exists()


def test_random_truncation_never_loses_a_complete_synced_record(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "c.wal"
    payloads = [bytes([i % 251]) * rng.randint(1, 300) for i in range(60)]
    with WriteAheadLog(path) as wal:
        for p in payloads:
            wal.append([p])
    full = path.read_bytes()
    boundaries = [len(MAGIC)]
    for p in payloads:
        boundaries.append(boundaries[-1] + 8 + len(p))
    for _ in range(80):
        cut = rng.randint(0, len(full))
        path.write_bytes(full[:cut])
        with WriteAheadLog(path) as wal:
            complete = sum(1 for b in boundaries[1:] if b <= cut)
            assert wal.records() == payloads[:complete]


def test_sigkill_during_appends_leaves_a_readable_prefix(tmp_path: Path) -> None:
    path = tmp_path / "c.wal"
    script = textwrap.dedent(
        f"""
        import sys
        from node.wal import WriteAheadLog
        wal = WriteAheadLog({str(path)!r})
        i = len(wal)
        while True:
            wal.append([b"record-%08d" % i + b"x" * (i % 97)])
            i += 1
            if i % 50 == 0:
                print(i, flush=True)
        """
    )
    rng = random.Random(3)
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd()
        )
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 3)):
            proc.stdout.readline()
        proc.kill()
        proc.wait()
        with WriteAheadLog(path) as wal:
            records = wal.records()
        for i, record in enumerate(records):
            assert record == b"record-%08d" % i + b"x" * (i % 97)
        assert len(records) >= 50

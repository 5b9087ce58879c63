"""Keys: signatures, addresses, and key files (permissions, atomic write, every corruption)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from chain.errors import ChainError, KeyFileError
from chain.keys import (
    PrivateKey,
    PublicKey,
    address_of,
    format_address,
    load_key_file,
    parse_address,
    save_key_file,
    verify_signature,
)

SEED = bytes(range(32))


def test_seed_determines_key_and_signature() -> None:
    a = PrivateKey.from_seed(SEED)
    b = PrivateKey.from_seed(SEED)
    assert a.seed == SEED
    assert a.public_key == b.public_key
    assert a.sign(b"msg") == b.sign(b"msg")  # Ed25519 is deterministic
    assert len(a.sign(b"msg")) == 64
    assert PrivateKey.generate().seed != PrivateKey.generate().seed


def test_sign_and_verify() -> None:
    key = PrivateKey.from_seed(SEED)
    sig = key.sign(b"hello")
    assert key.public_key.verify(b"hello", sig)
    assert verify_signature(key.public_key.raw, b"hello", sig)
    assert not key.public_key.verify(b"hellO", sig)
    other = PrivateKey.from_seed(b"\x01" * 32).public_key
    assert not other.verify(b"hello", sig)


@pytest.mark.parametrize(
    ("pk_len", "sig_len"), [(31, 64), (33, 64), (32, 63), (32, 65), (0, 0), (32, 0)]
)
def test_verify_never_raises_on_bad_lengths(pk_len: int, sig_len: int) -> None:
    assert verify_signature(b"\x01" * pk_len, b"data", b"\x02" * sig_len) is False


def test_verify_returns_false_for_a_key_that_is_not_a_curve_point() -> None:
    key = PrivateKey.from_seed(SEED)
    sig = key.sign(b"m")
    # y = 2 is not the y-coordinate of a point on edwards25519.
    not_a_point = (2).to_bytes(32, "little")
    assert verify_signature(not_a_point, b"m", sig) is False
    assert PublicKey(not_a_point).verify(b"m", sig) is False


def test_public_key_rejects_wrong_length() -> None:
    with pytest.raises(ChainError, match="32 bytes"):
        PublicKey(b"\x00" * 31)
    with pytest.raises(ChainError):
        PrivateKey.from_seed(b"\x00" * 31)


def test_address_is_first_20_bytes_of_sha256_of_public_key() -> None:
    key = PrivateKey.from_seed(SEED)
    expected = hashlib.sha256(key.public_key.raw).digest()[:20]
    assert key.address == expected
    assert key.public_key.address == expected
    assert address_of(key.public_key.raw) == expected


def test_address_text_round_trip_and_errors() -> None:
    addr = bytes(range(20))
    text = format_address(addr)
    assert text == "0x000102030405060708090a0b0c0d0e0f10111213"
    assert parse_address(text) == addr
    assert parse_address(text.upper().replace("0X", "0x")) == addr
    for bad, reason in [
        ("000102030405060708090a0b0c0d0e0f10111213", "0x"),
        ("0x0001", "40 hex digits"),
        ("0x" + "zz" * 20, "not hexadecimal"),
        ("0x" + "00" * 21, "40 hex digits"),
        # bytes.fromhex skips spaces: 40 characters with two spaces would give 19 bytes
        ("0x" + "ab" * 19 + "  ", "not hexadecimal"),
        ("0x " + "ab" * 19 + " ", "not hexadecimal"),
        ("0x" + "ab" * 19 + "\n\t", "not hexadecimal"),
    ]:
        with pytest.raises(ChainError, match=reason):
            parse_address(bad)
    with pytest.raises(ChainError):
        format_address(b"\x00" * 19)


def test_repr_does_not_leak_the_seed() -> None:
    key = PrivateKey.from_seed(SEED)
    assert SEED.hex() not in repr(key)


def test_key_file_round_trip_with_mode_0600(tmp_path: Path) -> None:
    key = PrivateKey.from_seed(SEED)
    path = tmp_path / "validator.json"
    old = os.umask(0)  # even with a permissive umask the file must be 0600
    try:
        save_key_file(path, key)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    body = json.loads(path.read_text())
    assert body == {
        "type": "ed25519",
        "seed": SEED.hex(),
        "public_key": key.public_key.raw.hex(),
        "address": format_address(key.address),
    }
    assert load_key_file(path).seed == SEED
    assert [p.name for p in tmp_path.iterdir()] == ["validator.json"]  # no temp left


def test_save_replaces_an_existing_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key_file(path, PrivateKey.from_seed(b"\x01" * 32))
    save_key_file(path, PrivateKey.from_seed(b"\x02" * 32))
    assert load_key_file(path).seed == b"\x02" * 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_into_missing_directory_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot write"):
        save_key_file(tmp_path / "nope" / "k.json", PrivateKey.from_seed(SEED))


def _write(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def _valid_obj() -> dict[str, str]:
    key = PrivateKey.from_seed(SEED)
    return {
        "type": "ed25519",
        "seed": SEED.hex(),
        "public_key": key.public_key.raw.hex(),
        "address": format_address(key.address),
    }


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_key_file(tmp_path / "absent.json")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o700])
def test_loose_permissions_are_refused_with_chmod_advice(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.json"
    save_key_file(path, PrivateKey.from_seed(SEED))
    path.chmod(mode)
    if mode & 0o077:
        with pytest.raises(KeyFileError, match="chmod 600"):
            load_key_file(path)
    else:  # 0700 has no group/other bits: accepted
        assert load_key_file(path).seed == SEED


def test_owner_only_read_mode_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_key_file(path, PrivateKey.from_seed(SEED))
    path.chmod(0o400)
    assert load_key_file(path).seed == SEED


def _mutated(**changes: object) -> dict[str, object]:
    obj: dict[str, object] = dict(_valid_obj())
    for k, v in changes.items():
        if v is None:
            del obj[k]
        else:
            obj[k] = v
    return obj


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "JSON object"),
        (json.dumps(_mutated(type="secp256k1")), "type must be"),
        (json.dumps(_mutated(seed=None)), "missing field"),
        (json.dumps(_mutated(extra="x")), "unknown field"),
        (json.dumps(_mutated(seed="00" * 31)), "seed must be 64 hex"),
        (json.dumps(_mutated(seed="zz" * 32)), "seed is not hexadecimal"),
        (json.dumps(_mutated(seed="00" * 31 + "  ")), "seed is not hexadecimal"),
        (json.dumps(_mutated(public_key=" " + "02" * 31 + " ")), "public_key is not hexadecimal"),
        (json.dumps(_mutated(seed=5)), "seed must be 64 hex"),
        (json.dumps(_mutated(seed="01" * 32)), "public_key does not match"),
        (json.dumps(_mutated(public_key="02" * 32)), "public_key does not match"),
        (json.dumps(_mutated(address="0x" + "00" * 20)), "address does not match"),
        (json.dumps(_mutated(address="nope")), "address: "),
        (b" " * 5000, "too large"),
    ],
)
def test_corrupt_key_files_give_clear_errors(
    tmp_path: Path, content: str | bytes, reason: str
) -> None:
    path = _write(tmp_path / "k.json", content)
    with pytest.raises(KeyFileError, match=reason) as info:
        load_key_file(path)
    assert str(path) in str(info.value)


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_key_file(d)


def test_failed_write_leaves_the_old_key_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "k.json"
    save_key_file(path, PrivateKey.from_seed(b"\x01" * 32))

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(KeyFileError, match="No space left"):
        save_key_file(path, PrivateKey.from_seed(b"\x02" * 32))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]
    assert load_key_file(path).seed == b"\x01" * 32


def test_signatures_are_not_malleable() -> None:
    """S + L verifies in lax Ed25519 implementations; libsodium must refuse it.

    Transaction hashes cover the signature, so a malleable signature would let anyone
    re-submit a transaction under a second hash.
    """
    order = 2**252 + 27742317777372353535851937790883648493
    key = PrivateKey.from_seed(SEED)
    for msg in (b"a", b"b", b"c", b"d"):
        sig = key.sign(msg)
        s = int.from_bytes(sig[32:], "little") + order
        assert s < 2**256
        mauled = sig[:32] + s.to_bytes(32, "little")
        assert key.public_key.verify(msg, sig)
        assert not key.public_key.verify(msg, mauled)

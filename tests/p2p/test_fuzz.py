"""Random bytes into every decoder: only P2PError (or a clean refusal) comes out."""

from __future__ import annotations

import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.errors import P2PError
from p2p.framing import FrameDecoder
from p2p.gossip import GossipConfig, TxGossip, decode_batch
from p2p.handshake import Hello
from p2p.messages import Envelope, Kind, PeerId

from .helpers import identity, make_pair, run_pair

# RLP-shaped inputs reach deeper than uniform bytes.
# Valid envelope encodings with one byte changed and maybe cut short: the near misses.
near_envelopes = st.builds(
    lambda kind, lam, payload, i, v, cut: (lambda b: (b[: i % len(b)] + bytes([v])
                                                      + b[i % len(b) + 1 :])[:cut])(
        rlp.encode([kind, lam, payload])),
    st.integers(0, 6), st.integers(0, 2**64 + 5), st.binary(max_size=80),
    st.integers(0, 200), st.integers(0, 255), st.integers(0, 300),
)
rlp_items = st.recursive(
    st.binary(max_size=40) | st.integers(min_value=0, max_value=2**70).map(
        lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=8,
).map(rlp.encode)
inputs = st.binary(max_size=400) | rlp_items
envelope_inputs = inputs | near_envelopes


@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=64), max_size=8))
def test_frame_decoder_only_raises_p2p_errors(data: list[bytes]) -> None:
    d = FrameDecoder(64)
    try:
        for chunk in data:
            for frame in d.feed_frames(chunk):
                assert len(frame) <= 64
    except P2PError:
        pass


@settings(max_examples=75, deadline=None)
@given(data=inputs)
def test_hello_decoder_only_raises_p2p_errors(data: bytes) -> None:
    try:
        hello = Hello.decode(data)
    except P2PError:
        return
    assert hello.encode() == data


@settings(max_examples=100, deadline=None)
@given(first=inputs, second=inputs)
def test_handshake_fed_garbage_only_raises_p2p_errors(first: bytes, second: bytes) -> None:
    hi, _ = make_pair(identity(1), identity(2))
    hi.start()
    try:
        hi.receive(first)
        hi.receive(second)
    except P2PError:
        return
    raise AssertionError("garbage completed a handshake")


@settings(max_examples=100, deadline=None)
@given(frames=st.lists(st.binary(max_size=100), min_size=1, max_size=4))
def test_session_fed_garbage_only_raises_p2p_errors(frames: list[bytes]) -> None:
    _ri, rr = run_pair(*make_pair(identity(1), identity(2)))
    try:
        for f in frames:
            rr.session.open(f)
    except P2PError:
        return
    raise AssertionError("a forged frame authenticated")


@settings(max_examples=75, deadline=None)
@given(data=inputs)
def test_gossip_core_turns_garbage_into_an_offender_never_an_exception(data: bytes) -> None:
    core = TxGossip(GossipConfig(), tx_hash=lambda tx: tx)
    out = core.receive(PeerId(1), data, now=0, peers=[PeerId(1), PeerId(2)])
    try:
        txs = decode_batch(data, core.config.batch_count_max, core.config.tx_bytes_max)
    except P2PError:
        assert out.offenders == ((PeerId(1), out.offenders[0][1]),) and out.deliver == ()
        return
    assert out.offenders == ()
    assert [tx for _, tx in out.deliver] == list(dict.fromkeys(txs))  # each new tx once


def test_kinds_are_small_and_stable() -> None:
    # The wire numbers are part of the protocol; changing one breaks old peers.
    assert [int(k) for k in Kind] == [1, 2, 3, 4, 5, 6, 7]


def _pyrlp_envelope(data: bytes) -> tuple[int, int, bytes] | None:
    """The reference: pyrlp's strict decoder plus the envelope's own field rules."""
    from rlp.sedes import List as RlpList
    from rlp.sedes import big_endian_int, binary

    try:
        k, lam, payload = rlp.decode(data, sedes=RlpList([big_endian_int, big_endian_int, binary],
                                                         strict=True), strict=True)
    except (rlp.DecodingError, rlp.DeserializationError, TypeError):
        return None
    if k not in {int(x) for x in Kind} or lam >= 2**63:
        return None
    return k, lam, bytes(payload)


@settings(max_examples=200, deadline=None)
@given(data=envelope_inputs)
def test_fast_envelope_codec_agrees_with_pyrlp_on_any_input(data: bytes) -> None:
    """Same verdict and value as the reference; nothing but P2PError ever escapes."""
    expected = _pyrlp_envelope(data)
    try:
        env = Envelope.decode(data)
    except P2PError:
        assert expected is None
        return
    assert expected == (int(env.kind), env.lamport, env.payload)
    assert env.encode() == data  # whatever decodes is canonical


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(list(Kind)), lamport=st.integers(0, 2**63 - 1),
       payload=st.binary(max_size=300))
def test_fast_envelope_encoder_matches_pyrlp(kind: Kind, lamport: int, payload: bytes) -> None:
    assert Envelope(kind, lamport, payload).encode() == rlp.encode([int(kind), lamport, payload])

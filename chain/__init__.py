"""chain: the domain of Phalanx — keys, canonical encoding, transactions, blocks, Merkle
trees, genesis, state, execution, mempool and storage.

This package never imports ``consensus``, ``p2p`` or ``trio``. The names below are the
stable surface other packages use; submodules hold the details.
"""

from chain.block import (
    EMPTY_CERTIFICATE,
    MAX_BLOCK_BYTES,
    MAX_BLOCK_TXS,
    ZERO_HASH,
    Block,
    CommitCertificate,
    Header,
    Vote,
    build_block,
    decode_block,
    decode_certificate,
    decode_header,
    make_certificate,
)
from chain.errors import ChainError, DecodeError, GenesisError, KeyFileError
from chain.executor import BlockResult, Executor
from chain.genesis import (
    Genesis,
    GenesisValidator,
    genesis_block,
    load_genesis,
    make_dev_genesis,
    parse_genesis,
)
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
from chain.mempool import Mempool, MempoolConfig, MempoolRejected, RejectReason
from chain.merkle import (
    MerkleProof,
    decode_proof,
    encode_proof,
    merkle_proof,
    merkle_root,
    verify_proof,
)
from chain.receipt import Log, Receipt, ReceiptStatus, decode_receipt
from chain.runtime import CallResult, ContractRuntime, ExecutionContext
from chain.state import Account, StateCommit, StateDB, apply_writes, full_state_root
from chain.tx import (
    MAX_TX_BYTES,
    MAX_TX_DATA_BYTES,
    TX_DOMAIN,
    Transaction,
    decode_transaction,
    make_transaction,
)

__all__ = [
    "EMPTY_CERTIFICATE",
    "MAX_BLOCK_BYTES",
    "MAX_BLOCK_TXS",
    "MAX_TX_BYTES",
    "MAX_TX_DATA_BYTES",
    "TX_DOMAIN",
    "ZERO_HASH",
    "Account",
    "Block",
    "BlockResult",
    "CallResult",
    "ChainError",
    "CommitCertificate",
    "ContractRuntime",
    "DecodeError",
    "ExecutionContext",
    "Executor",
    "Genesis",
    "GenesisError",
    "GenesisValidator",
    "Header",
    "KeyFileError",
    "Log",
    "Mempool",
    "MempoolConfig",
    "MempoolRejected",
    "MerkleProof",
    "PrivateKey",
    "PublicKey",
    "Receipt",
    "ReceiptStatus",
    "RejectReason",
    "StateCommit",
    "StateDB",
    "Transaction",
    "Vote",
    "address_of",
    "apply_writes",
    "build_block",
    "decode_block",
    "decode_certificate",
    "decode_header",
    "decode_proof",
    "decode_receipt",
    "decode_transaction",
    "encode_proof",
    "format_address",
    "full_state_root",
    "genesis_block",
    "load_genesis",
    "load_key_file",
    "make_certificate",
    "make_dev_genesis",
    "make_transaction",
    "merkle_proof",
    "merkle_root",
    "parse_address",
    "parse_genesis",
    "save_key_file",
    "verify_proof",
    "verify_signature",
]

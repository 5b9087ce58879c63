"""testnet."""

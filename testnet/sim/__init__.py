"""testnet/sim."""

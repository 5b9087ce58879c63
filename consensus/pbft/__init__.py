"""consensus/pbft."""

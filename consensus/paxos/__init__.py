"""consensus/paxos."""

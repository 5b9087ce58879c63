"""The ``phalanx`` command line: thin commands over node/ and testnet/."""

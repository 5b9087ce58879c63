"""chain/vm."""

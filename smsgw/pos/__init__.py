"""`smsgw pos`: a POS terminal simulator and load generator for intake v1."""

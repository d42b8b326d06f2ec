"""Carrier profiles (YAML), installed as the ``smsgw.profiles`` package."""

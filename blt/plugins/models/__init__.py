"""Builtin model plugins: the BLT and the token-level transformer baselines."""

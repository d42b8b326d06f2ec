"""Dispatch: routing, retries by SMPP status class, TTL and failover."""

"""POS intake protocol v1 (../shared/spec/intake-v1.md)."""

"""Alert rendering: templates per language and merchant, money, one-segment fitting."""

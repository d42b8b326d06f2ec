"""smsgw."""

"""The bench: one measuring loop, the protocols that produce its rows, and the report (tables, plots)."""

"""Risk domain rules (pure, no I/O): they arrive with the Risk issue."""

"""KYC domain rules (pure, no I/O): they arrive with the KYC issue."""

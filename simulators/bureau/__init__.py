"""Credit bureau simulator (Serasa style): score 0..1000 and negative records."""

"""Payments domain rules (pure, no I/O): state machine, PIX keys and ids, BR Code,
webhook signatures, limits, fees and derived identifiers."""

"""Risk domain (pure, no I/O): statements → features → hard rules + scorecard → decision.

Public API: see docs/RISK_MODEL.md. Only the model loader in `scorecard` reads
files (the versioned coefficients shipped next to the code).
"""

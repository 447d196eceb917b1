"""Risk service: credit risk: features, scores, decisions, model versions, Open Finance data."""

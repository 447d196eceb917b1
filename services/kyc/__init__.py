"""KYC service: identity verification: documents, KYC results, provider calls, review queue."""

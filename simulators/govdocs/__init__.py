"""Gov document check simulator (Datavalid-like): OAuth2 + CPF/name/birth/CNH/RG match."""

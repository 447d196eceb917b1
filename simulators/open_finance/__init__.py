"""Open Finance Brasil data-holder simulator (consents v3, accounts v2)."""

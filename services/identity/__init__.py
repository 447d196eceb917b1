"""Identity: users, profiles, credentials, sessions, devices, MFA."""

"""Read models several services keep of another service's events.

Only the mapping from events to a state lives here (pure, no I/O); each
consumer writes that state into its own schema with its own SQL.
"""

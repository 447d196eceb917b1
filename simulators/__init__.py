"""Third-party simulators (docs/SIMULATORS.md): HTTP fakes the services talk to in dev and tests."""

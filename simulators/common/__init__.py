"""Shared simulator machinery: runner, clock, fault injection, admin API, access log."""

from simulators.common.app import (
    CLOCK_KEY,
    ErrorBodyFactory,
    SimulatorConfig,
    build_app,
    run,
)
from simulators.common.clock import Clock
from simulators.common.faults import FaultInjector, FaultSettings

__all__ = [
    "CLOCK_KEY",
    "Clock",
    "ErrorBodyFactory",
    "FaultInjector",
    "FaultSettings",
    "SimulatorConfig",
    "build_app",
    "run",
]

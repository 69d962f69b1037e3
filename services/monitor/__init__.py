"""`baker monitor`: the extensions registry and service health (DESIGN §2, §5)."""

from services.monitor.monitor import Monitor, MonitorSettings

__all__ = ["Monitor", "MonitorSettings"]

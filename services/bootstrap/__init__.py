"""The composition root: the one place that wires adapters into services.

Every daemon (`baker up`, `brain`, `worker`, `projector`, `monitor`, `launcher`) is built here
and nowhere else; services are handed their collaborators (ports in our own types,
`services.ports`) and never build them from a NATS connection.

* `runtime`: a process's connection, provisioned streams and event store (`Runtime`);
  `heartbeat_for`, `topology`.
* `settings`: the services' settings from the environment's `Settings`.
* `parts`: building one part (a Brain and its parts, a worker, a projector, a monitor, the
  task launcher) on a connection.
* `brain_process`: a whole Brain process (Brain, projector, live bus, API, role controller,
  and in `baker up` the monitor, launcher and workers), started and stopped together.
* `daemons`: the entry points the CLI calls.
"""

from services.bootstrap.runtime import Runtime, heartbeat_for, runtime, topology

__all__ = ["Runtime", "heartbeat_for", "runtime", "topology"]

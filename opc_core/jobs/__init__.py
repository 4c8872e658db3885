"""Background execution: worker processes with a stop channel, and the job manager that queues runs."""

from opc_core.jobs import ray_engine  # noqa: F401, E402  (registers the sweep engine "ray"; ray itself loads lazily)

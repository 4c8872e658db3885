"""Background execution: worker processes with a stop channel, and the job manager that queues runs."""

"""Background execution: worker processes, the stop channel, and the job manager that queues runs."""

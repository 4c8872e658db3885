"""The run store: one typed record per run, its steps, metrics and artifact files, and the run lifecycle."""

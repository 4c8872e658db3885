"""One function per user action (train, unlearn, attack, explore, bench); the CLI, jobs and pages call these."""

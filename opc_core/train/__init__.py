"""The one training loop, batched inference, and the checkpoint zoo (load, save, train, install)."""

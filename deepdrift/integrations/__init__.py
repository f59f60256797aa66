"""Optional bridges from a monitor to serving and training frameworks; each imports its framework on use."""

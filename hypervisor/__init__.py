"""The hypervisor boundary (DESIGN §5). Nothing under this package may import Django: a ruff
banned-import rule (hypervisor/ruff.toml) enforces it."""

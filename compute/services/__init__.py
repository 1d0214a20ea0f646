"""The only code that writes compute resources: `<entity>_<verb>()` functions, each in one
transaction with its audit event."""

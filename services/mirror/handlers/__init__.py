"""The mirror's use cases: syncing each source, reading a person, and what operators do."""

"""The mirror's domain: the records of each source (records) and what may be shown of a person (overview).
Pure Python: no SQLAlchemy, no gRPC, no generated code."""

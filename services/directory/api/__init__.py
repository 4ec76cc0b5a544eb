"""The directory's gRPC face: the servicer and its protobuf ⇄ domain mapping."""

from services.directory.api.servicer import DirectoryServicer

__all__ = ["DirectoryServicer"]

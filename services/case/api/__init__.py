"""The case service's gRPC face: the servicer and its protobuf ⇄ domain mapping."""

from services.case.api.servicer import CaseServicer

__all__ = ["CaseServicer"]

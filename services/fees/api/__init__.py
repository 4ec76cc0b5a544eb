"""The fees service's gRPC face: the servicer and its protobuf ⇄ domain mapping."""

from services.fees.api.servicer import FeeServicer

__all__ = ["FeeServicer"]

"""The mirror's gRPC face: the servicer and its protobuf ⇄ domain mapping."""

from services.mirror.api.servicer import MirrorServicer

__all__ = ["MirrorServicer"]

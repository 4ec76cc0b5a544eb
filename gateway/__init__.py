"""The HTTP gateway: REST/JSON for the front ends over the gRPC services, from their protos' annotations."""

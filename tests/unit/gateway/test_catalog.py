"""What the gateway serves is read from the generated code: a service added later is served by its
annotations alone."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from gateway.catalog import load_catalog
from gateway.routing import Router
from gateway.transcoding import Transcoder

DESCRIPTORS = Path(__file__).resolve().parents[3] / "gen" / "descriptors.binpb"


def fees_module() -> SimpleNamespace:
    """A stand-in for the generated module of aldredirekt.fees.v1, with one annotated RPC."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2, http_pb2, annotations_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="aldredirekt/fees/v1/fees.proto",
        package="aldredirekt.fees.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    request = file.message_type.add(name="GetTariffRequest")
    request.field.add(name="name", number=1, type=9, label=1, json_name="name")
    file.message_type.add(name="Tariff")
    service = file.service.add(name="FeeService")
    method = service.method.add(
        name="GetTariff",
        input_type=".aldredirekt.fees.v1.GetTariffRequest",
        output_type=".aldredirekt.fees.v1.Tariff",
    )
    method.options.Extensions[annotations_pb2.http].get = "/api/v1/{name=tariffs/*}"
    return SimpleNamespace(DESCRIPTOR=pool.AddSerializedFile(file.SerializeToString()))


def test_a_new_service_is_served_by_its_annotations() -> None:
    catalog = load_catalog(modules=[fees_module()])
    assert catalog.backends == ("fees",)
    (rpc,) = catalog.rpcs
    assert rpc.path == "/aldredirekt.fees.v1.FeeService/GetTariff"
    router = Router(Transcoder.of(rpc, b) for b in rpc.bindings)
    found = router.find("GET", "/api/v1/tariffs/2027")
    assert found is not None
    assert found.values == {"name": "tariffs/2027"}


def test_every_service_of_the_generated_code_is_fronted_with_comments() -> None:
    catalog = load_catalog(descriptors=DESCRIPTORS)
    assert set(catalog.backends) >= {"case", "directory", "mirror"}
    assert "common" not in catalog.backends
    assert (
        catalog.comment("aldredirekt.case.v1.CaseService.CreateCase") == "Registers a contact as a new case."
    )
    served = {rpc.method.name for rpc in catalog.rpcs}
    assert {"CreateCase", "GetCase", "UpdateUnit", "GetPersonOverview"} <= served

"""`python -m scripts.call` as a process against a real directory process: answers, refusals, no server."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc
from google.protobuf import json_format

from support.ports import free_port
from tests.e2e.scripts.conftest import REPOSITORY, DirectoryProcess


def call_script(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.call", *arguments],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )


def call_directory(directory: DirectoryProcess, *arguments: str) -> subprocess.CompletedProcess[str]:
    return call_script(
        "directory", *arguments, "--address", directory.address, "--dev-dir", str(directory.dev_dir)
    )


def test_an_answer_is_printed_as_the_json_of_the_response(directory_process: DirectoryProcess):
    with grpc.insecure_channel(directory_process.address) as channel:
        expected = directory_pb2_grpc.DirectoryServiceStub(channel).ListDistricts(
            pb.ListDistrictsRequest(page_size=2), metadata=directory_process.metadata("agent"), timeout=10
        )

    finished = call_directory(directory_process, "ListDistricts", '{"page_size": 2}')

    assert finished.returncode == 0, finished.stderr
    assert len(expected.districts) == 2
    assert finished.stdout == json_format.MessageToJson(expected, ensure_ascii=False) + "\n"
    assert len(json.loads(finished.stdout)["districts"]) == 2


def test_a_request_with_bad_fields_prints_code_message_reason_and_every_field(
    directory_process: DirectoryProcess,
):
    body = json.dumps({"person_number": "19400101-1230", "postal_code": "1234", "purpose": ""})

    finished = call_directory(directory_process, "ResolveResponsible", body)

    lines = finished.stderr.splitlines()
    assert finished.returncode == 1
    assert finished.stdout == ""
    assert lines[0].startswith("INVALID_ARGUMENT: ")
    assert lines[1].startswith("  reason: ")
    assert len(lines[1]) > len("  reason: ")
    violations = [line.strip().partition(":")[0] for line in lines[2:]]
    assert violations == ["postal_code", "purpose"]
    assert all(line.partition(": ")[2] for line in lines[2:])


def test_a_refused_role_prints_the_reason_with_its_metadata(directory_process: DirectoryProcess):
    body = json.dumps({"unit_id": "ny-enhet", "unit": {"display_name": "Ny enhet"}})

    finished = call_directory(directory_process, "CreateUnit", body)

    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [
        "PERMISSION_DENIED: this needs one of the roles: directory_admin",
        "  reason: ROLE_NOT_ALLOWED (roles=directory_admin)",
    ]


def test_a_service_that_is_not_running_is_named_in_one_line(tmp_path):
    address = f"127.0.0.1:{free_port()}"

    finished = call_script("case", "ListReferenceData", "--address", address, "--dev-dir", str(tmp_path))

    assert finished.returncode == 1
    assert finished.stderr.splitlines() == [f"could not reach case at {address}: is `make run` up?"]

"""The resources front ends need that no one service has: the agent's view of a person, and the access log
of a person merged over every service.

The person view asks the case service (open cases), the mirror (the overview, with the access grant) and
the directory (the responsible officer) at once; each part answers with its own status, so a service that
is down costs its part only. The person number travels in the body, never in a URL.

The access log is each service's own (AccessLogService, which every deployable serves), merged newest
first. One page token covers all of them: for each service, the token of the page the merge stopped in
and the sequence of the last entry shown from it (the next page asks again from there, and drops what was
shown; entries added meanwhile have higher sequences and are dropped too), or nothing once it is read to
the end. The token is signed with GATEWAY_PAGE_TOKEN_KEY and bound to the caller and the person, so one
made or changed by hand is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from aldredirekt.case.v1 import case_pb2
from aldredirekt.common.v1 import access_log_pb2
from aldredirekt.directory.v1 import directory_pb2
from aldredirekt.mirror.v1 import mirror_pb2
from google.protobuf.message import Message

from gateway.backends import Backends
from gateway.problems import Problem, ProblemError, from_rpc_error, invalid, problem
from gateway.transcoding import response_document
from services.common.auth import Caller
from services.common.errors import InvalidArgument
from services.common.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageTokens, query_fingerprint

M = TypeVar("M", bound=Message)

FIND_OPEN_CASES = "/aldredirekt.case.v1.CaseService/FindOpenCases"
GET_PERSON_OVERVIEW = "/aldredirekt.mirror.v1.MirrorService/GetPersonOverview"
RESOLVE_RESPONSIBLE = "/aldredirekt.directory.v1.DirectoryService/ResolveResponsible"
GET_OFFICER = "/aldredirekt.directory.v1.DirectoryService/GetOfficer"
LIST_ACCESS_LOG = "/aldredirekt.common.v1.AccessLogService/ListAccessLog"
# The reads the composite resources make, for the channels' retry policy.
COMPOSITE_READS: Mapping[str, tuple[str, ...]] = {
    "case": (FIND_OPEN_CASES,),
    "mirror": (GET_PERSON_OVERVIEW,),
    "directory": (RESOLVE_RESPONSIBLE, GET_OFFICER),
}
DEFAULT_PURPOSE = "person view"


@dataclass(frozen=True)
class Outbound:
    """What every call to a backend carries for one HTTP request: the metadata and the deadline."""

    metadata: tuple[tuple[str, str], ...]
    timeout: float
    trace_id: str


@dataclass(frozen=True)
class Composer:
    backends: Backends
    page_tokens: PageTokens

    async def _call(self, backend: str, path: str, request: Message, answer: type[M], out: Outbound) -> M:
        if backend not in self.backends.channels:
            raise ProblemError(
                Problem(status=503, reason="NOT_FRONTED", detail=f"the {backend} service is not served here")
            )
        try:
            return await self.backends.call(
                backend, path, request, answer, metadata=out.metadata, deadline=out.timeout
            )
        except grpc.aio.AioRpcError as error:
            raise ProblemError(from_rpc_error(error, backend=backend)) from None

    # ---- the person view ---------------------------------------------------------------------------------

    async def person_view(
        self, *, person_number: str, purpose: str, district: str, postal_code: str, out: Outbound
    ) -> dict[str, Any]:
        overview_task = asyncio.ensure_future(
            self._call(
                "mirror",
                GET_PERSON_OVERVIEW,
                mirror_pb2.GetPersonOverviewRequest(person_number=person_number, purpose=purpose),
                mirror_pb2.GetPersonOverviewResponse,
                out,
            )
        )
        cases = _part(
            lambda: self._call(
                "case",
                FIND_OPEN_CASES,
                case_pb2.FindOpenCasesRequest(person_number=person_number),
                case_pb2.FindOpenCasesResponse,
                out,
            ),
            response_document,
            out,
        )
        responsible = _part(
            lambda: self._responsible(
                overview_task,
                person_number=person_number,
                purpose=purpose or DEFAULT_PURPOSE,
                district=district,
                postal_code=postal_code,
                out=out,
            ),
            lambda data: data,
            out,
        )
        overview = _part(lambda: overview_task, response_document, out)
        open_cases, overview_part, responsible_part = await asyncio.gather(cases, overview, responsible)
        return {"open_cases": open_cases, "overview": overview_part, "responsible": responsible_part}

    async def _responsible(
        self,
        overview_task: Awaitable[mirror_pb2.GetPersonOverviewResponse],
        *,
        person_number: str,
        purpose: str,
        district: str,
        postal_code: str,
        out: Outbound,
    ) -> dict[str, Any]:
        """The officer the district's care system names (through the mirror), else the directory's rules."""

        def resolve(
            district: str, postal_code: str
        ) -> asyncio.Future[directory_pb2.ResolveResponsibleResponse]:
            return asyncio.ensure_future(
                self._call(
                    "directory",
                    RESOLVE_RESPONSIBLE,
                    directory_pb2.ResolveResponsibleRequest(
                        person_number=person_number,
                        district=district,
                        postal_code=postal_code,
                        purpose=purpose,
                    ),
                    directory_pb2.ResolveResponsibleResponse,
                    out,
                )
            )

        # Asked at once when the caller knows where the person lives, while the mirror is asked.
        by_rules = resolve(district, postal_code) if district or postal_code else None
        try:
            try:
                overview: mirror_pb2.PersonOverview | None = (await overview_task).overview
                overview_failed = False
            except ProblemError:
                overview, overview_failed = None, True
            named = overview.responsible_officer if overview is not None else None
            if named is not None and (named.officer or named.team):
                officer = (
                    await self._call(
                        "directory",
                        GET_OFFICER,
                        directory_pb2.GetOfficerRequest(name=named.officer),
                        directory_pb2.GetOfficerResponse,
                        out,
                    )
                    if named.officer
                    else None
                )
                found: dict[str, Any] = {
                    "source": "CARE_SYSTEM",
                    "team": named.team,
                    "district": named.district,
                }
                if officer is not None:
                    found["officer"] = response_document(officer.officer)
                return found
            if by_rules is None and overview is not None:
                home = overview.home_districts[0] if overview.home_districts else ""
                if home or overview.identity.postal_code:
                    by_rules = resolve(home, overview.identity.postal_code)
            if by_rules is None:
                if overview_failed:
                    raise problem(
                        424,
                        "OVERVIEW_UNAVAILABLE",
                        "the responsible officer is found from the mirror's overview, which did not answer; "
                        "give district or postal_code to ask the directory's rules",
                    )
                raise problem(
                    404,
                    "RESPONSIBLE_UNKNOWN",
                    "no district holds the person; give district or postal_code to ask the directory's rules",
                )
            resolved = await by_rules
            by_rules = None
            result: dict[str, Any] = {
                "source": "DIRECTORY_RULES",
                "team": resolved.team,
                "district": resolved.district.name,
                "resolution": response_document(resolved),
            }
            if resolved.HasField("officer"):
                result["officer"] = response_document(resolved.officer)
            return result
        finally:
            if by_rules is not None and not by_rules.done():
                by_rules.cancel()

    # ---- the access log ------------------------------------------------------------------------------------

    async def access_log(
        self,
        *,
        caller: Caller,
        person_number: str,
        page_size: int,
        page_token: str,
        out: Outbound,
    ) -> dict[str, Any]:
        """`person_number` empty: the citizen's own log."""
        if page_size < 0:
            raise _invalid_field("page_size", "must not be negative")
        size = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
        names = sorted(self.backends.channels)
        fingerprint = query_fingerprint({"access_log": person_number or "self", "services": names}, caller)
        positions = (
            self._open(page_token, fingerprint, names) if page_token else {n: ("", None) for n in names}
        )
        streams = {
            name: _Stream(name, *position) for name, position in positions.items() if position is not None
        }

        async def fill(stream: _Stream) -> None:
            await stream.fill(
                lambda token: self._call(
                    stream.backend,
                    LIST_ACCESS_LOG,
                    access_log_pb2.ListAccessLogRequest(
                        person_number=person_number, page_size=size, page_token=token
                    ),
                    access_log_pb2.ListAccessLogResponse,
                    out,
                )
            )

        # A log with a service's entries missing would say less than the truth: one service's refusal or
        # silence is the answer's, rather than a partial log.
        await asyncio.gather(*(fill(stream) for stream in streams.values()))
        entries: list[access_log_pb2.AccessLogEntry] = []
        while len(entries) < size:
            ready = [s for s in streams.values() if s.buffer]
            if not ready:
                break
            newest = max(ready, key=lambda s: s.head_key())
            entries.append(newest.take())
            if not newest.buffer and newest.next_token:
                await fill(newest)
        state: dict[str, list[Any] | None] = dict.fromkeys(names)
        state.update({s.backend: s.position() for s in streams.values()})
        more = any(position is not None for position in state.values())
        token = self.page_tokens.sign(fingerprint, state) if more else ""
        return {"entries": [response_document(e) for e in entries], "next_page_token": token}

    def _open(
        self, token: str, fingerprint: str, names: Sequence[str]
    ) -> dict[str, tuple[str, int | None] | None]:
        """Each service's position in a token of ours; a 400 naming page_token for anything else."""
        try:
            state = self.page_tokens.open(token, fingerprint)
        except InvalidArgument as error:
            raise _invalid_field("page_token", error.violations[0].description) from None
        if not isinstance(state, dict) or set(state) != set(names):
            raise _invalid_field("page_token", "is not a page token the gateway issued for this query")
        positions: dict[str, tuple[str, int | None] | None] = {}
        for name in names:
            value = state[name]
            if value is None:
                positions[name] = None
                continue
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not isinstance(value[0], str)
                or not (value[1] is None or (isinstance(value[1], int) and not isinstance(value[1], bool)))
            ):
                raise _invalid_field("page_token", "is not a page token the gateway issued for this query")
            positions[name] = (value[0], value[1])
        return positions


class _Stream:
    """One service's entries, in its own order (newest first), as the merge takes them."""

    def __init__(self, backend: str, token: str, shown_before: int | None):
        self.backend = backend
        # The token of the page in the buffer, and the sequence the entries shown from it stopped at.
        self.page_token = token
        self.shown_before = shown_before
        self.buffer: list[access_log_pb2.AccessLogEntry] = []
        self.next_token = ""
        self.started = False

    async def fill(self, fetch: Callable[[str], Awaitable[access_log_pb2.ListAccessLogResponse]]) -> None:
        """Reads pages from `next_token` until one has entries not yet shown, or the log ends."""
        first = not self.started
        self.started = True
        token = self.page_token if first else self.next_token
        while True:
            answer = await fetch(token)
            self.page_token = token
            fresh = [e for e in answer.entries if self.shown_before is None or e.sequence < self.shown_before]
            self.next_token = answer.next_page_token
            if fresh or not self.next_token:
                self.buffer = fresh
                return
            token = self.next_token

    def head_key(self) -> tuple[int, int, str, int]:
        head = self.buffer[0]
        return (head.time.seconds, head.time.nanos, self.backend, head.sequence)

    def take(self) -> access_log_pb2.AccessLogEntry:
        entry = self.buffer.pop(0)
        self.shown_before = entry.sequence
        return entry

    def position(self) -> list[Any] | None:
        if self.buffer:
            # Nothing newer than this page's first entry is shown later: entries written since (the reads of
            # this very log among them) belong to a new first page, not to the middle of this one.
            bound = self.shown_before if self.shown_before is not None else self.buffer[0].sequence + 1
            return [self.page_token, bound]
        if self.next_token:
            return [self.next_token, None]
        return None


def _invalid_field(name: str, description: str) -> ProblemError:
    return invalid([(name, description)])


async def _part(
    fetch: Callable[[], Awaitable[Any]], render: Callable[[Any], dict[str, Any]], out: Outbound
) -> dict[str, Any]:
    """One part of a composite answer: its data with status 200, or its problem with that problem's status."""
    try:
        data = await fetch()
    except ProblemError as refused:
        return {"status": refused.problem.status, "problem": refused.problem.document(out.trace_id)}
    return {"status": 200, "data": render(data)}


# ---- the OpenAPI description of these resources --------------------------------------------------------

PERSON_VIEW_PATH = "/api/v1/persons:view"
MY_ACCESS_LOG_PATH = "/api/v1/me/accessLog"
PERSON_ACCESS_LOG_PATH = "/api/v1/persons:accessLog"


def _part_schema(data: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["status"],
        "properties": {
            "status": {"type": "integer", "description": "200, or the status of the part's problem."},
            "data": data,
            "problem": {"$ref": "#/components/schemas/Problem"},
        },
    }


def composite_paths(schemas: Any) -> dict[str, dict[str, Any]]:
    """The paths of the composite resources, their schemas referring to the generated ones in `schemas`
    (gateway.openapi.Schemas)."""
    from gateway.openapi import error_responses

    officer = schemas.message(directory_pb2.Officer.DESCRIPTOR)
    responsible = {
        "type": "object",
        "properties": {
            "source": {
                "type": "string",
                "enum": ["CARE_SYSTEM", "DIRECTORY_RULES"],
                "description": "CARE_SYSTEM: the officer the district's care system names (through the "
                "mirror); "
                "DIRECTORY_RULES: the directory's assignment rules.",
            },
            "officer": officer,
            "team": {"type": "string"},
            "district": {"type": "string"},
            "resolution": schemas.message(directory_pb2.ResolveResponsibleResponse.DESCRIPTOR),
        },
    }
    person_number = {"type": "string", "description": "The person, in any accepted form (10 or 12 digits)."}
    view_request = {
        "type": "object",
        "required": ["person_number"],
        "additionalProperties": False,
        "properties": {
            "person_number": person_number,
            "purpose": {
                "type": "string",
                "description": "Why, for the access logs; the grant's case when empty.",
            },
            "district": {
                "type": "string",
                "description": '"districts/{district}", when known: the directory is asked at once.',
            },
            "postal_code": {"type": "string", "description": "The person's postal code, when known."},
        },
    }
    view = {
        "type": "object",
        "required": ["open_cases", "overview", "responsible"],
        "properties": {
            "open_cases": _part_schema(
                schemas.message(case_pb2.FindOpenCasesResponse.DESCRIPTOR), "The case service's open cases."
            ),
            "overview": _part_schema(
                schemas.message(mirror_pb2.GetPersonOverviewResponse.DESCRIPTOR),
                "The mirror's overview, as the access grant allows.",
            ),
            "responsible": _part_schema(responsible, "The responsible officer or team."),
        },
    }
    entries = {
        "type": "object",
        "required": ["entries", "next_page_token"],
        "properties": {
            "entries": {
                "type": "array",
                "items": schemas.message(access_log_pb2.AccessLogEntry.DESCRIPTOR),
                "description": "The reads of the person's data in every service, newest first.",
            },
            "next_page_token": {"type": "string", "description": "The next page's token; empty on the last."},
        },
    }
    page_size = {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2**31 - 1}
    paging = [
        {
            "name": "page_size",
            "in": "query",
            "required": False,
            "schema": page_size,
            "description": "At most this many entries (default 50, larger than 1,000 lowered to 1,000).",
        },
        {
            "name": "page_token",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "The next_page_token of the page before.",
        },
    ]
    grant = {"$ref": "#/components/parameters/AccessGrant"}
    ok = {"description": "The answer.", "content": {"application/json": {"schema": entries}}}
    return {
        PERSON_VIEW_PATH: {
            "post": {
                "operationId": "Composite_GetPersonView",
                "summary": "The agent's view of a person: open cases, the mirror's overview and the "
                "responsible officer.",
                "description": "Each part is fetched at once and answers with its own status, so that one "
                "service "
                "down fails its part only. The access grant of the person's consent goes in X-Access-Grant.",
                "tags": ["Composite"],
                "parameters": [grant],
                "requestBody": {"required": True, "content": {"application/json": {"schema": view_request}}},
                "responses": {
                    "200": {"description": "The view.", "content": {"application/json": {"schema": view}}},
                    **error_responses(body=True, etag=False),
                },
            }
        },
        MY_ACCESS_LOG_PATH: {
            "get": {
                "operationId": "Composite_ListMyAccessLog",
                "summary": "Who has read my data: the citizen's own access log, over every service.",
                "tags": ["Composite"],
                "parameters": paging,
                "responses": {"200": ok, **error_responses(body=False, etag=False)},
            }
        },
        PERSON_ACCESS_LOG_PATH: {
            "post": {
                "operationId": "Composite_ListPersonAccessLog",
                "summary": "Who has read a person's data, over every service (auditors).",
                "tags": ["Composite"],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["person_number"],
                                "additionalProperties": False,
                                "properties": {
                                    "person_number": person_number,
                                    "page_size": page_size,
                                    "page_token": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": ok, **error_responses(body=True, etag=False)},
            }
        },
    }

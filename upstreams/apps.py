"""The HTTP face of each stand-in: a Starlette app per Paraply instance, one for Agresso, one for control.

Answers are built from each version's cached JSON, so a page of the change feed is a bisect, a slice and
a join; only the versions served broken (the `malformed_rate` knob) are encoded afresh.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from upstreams.credentials import Credentials
from upstreams.deferrals import DeferralRefused, request_deferral
from upstreams.faults import InstanceMiddleware, error_body
from upstreams.knobs import KnobError
from upstreams.mutations import MutationError, mutate
from upstreams.store import Entry, Key
from upstreams.wire import format_time, malformed, parse_time
from upstreams.world import AgressoInstance, Instance, World

__all__ = ["agresso_app", "control_app", "paraply_app"]

_FEED_LIMIT = (500, 1000)
_IDS_LIMIT = (5000, 10_000)
_PEOPLE_LIMIT = (50, 1000)
_MAX_AFTER = 100
Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _json(body: object, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/json",
    )


def _error(status: int, error: str, message: str) -> Response:
    return Response(error_body(error, message), status_code=status, media_type="application/json")


def _handled(handler: Handler) -> Handler:
    """Turns a bad parameter into a 400 with the reason, the one error every handler can meet."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as error:
            return _error(400, "invalid_argument", error.message)

    return guarded


async def _not_found(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "error")
    return _error(status, code, str(getattr(error, "detail", "")) or code)


def _limit(request: Request, bounds: tuple[int, int]) -> int:
    default, highest = bounds
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise BadRequest(f"limit must be a whole number from 1 to {highest}")
    return int(raw)


def _person_number(request: Request) -> str | None:
    raw = request.query_params.get("person_number")
    if raw is not None and (len(raw) != 12 or not raw.isascii() or not raw.isdigit()):
        raise BadRequest("person_number must be 12 digits")
    return raw


def _since(request: Request) -> Key | None:
    since = request.query_params.get("since")
    after = request.query_params.get("after")
    if since is None:
        if after is not None:
            raise BadRequest("after goes with since")
        return None
    try:
        moment = parse_time(since)
    except ValueError:
        raise BadRequest("since must be an RFC 3339 time with a zone") from None
    if after is not None and len(after) > _MAX_AFTER:
        raise BadRequest(f"after is an id of at most {_MAX_AFTER} characters")
    return (moment, after or "")


def _encoded(instance: Instance[Any], entry: Entry[Any]) -> bytes:
    kind = instance.malformation(entry)
    if not kind:
        return instance.store.encoded(entry)
    broken = malformed(instance.store.document(entry), kind)
    return json.dumps(broken, ensure_ascii=False, separators=(",", ":")).encode()


def _items(instance: Instance[Any], entries: list[Entry[Any]], tail: bytes = b"") -> Response:
    body = b'{"items":[' + b",".join(_encoded(instance, entry) for entry in entries) + b"]" + tail + b"}"
    return Response(body, media_type="application/json")


def _record_routes(instance: Instance[Any], prefix: str) -> list[Route]:
    # The store is looked up on each request: a reset of the world gives the instance a fresh one.

    async def changes(request: Request) -> Response:
        since = _since(request)
        entries, following = instance.store.changes(since, _limit(request, _FEED_LIMIT))
        tail = b',"next":null'
        if following is not None:
            cursor = {"since": format_time(following[0]), "after": following[1]}
            tail = b',"next":' + json.dumps(cursor, ensure_ascii=False).encode()
        return _items(instance, entries, tail)

    async def ids(request: Request) -> Response:
        raw = request.query_params.get("cursor")
        after = None
        if raw:
            try:
                padded = raw.encode() + b"=" * (-len(raw) % 4)
                after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise BadRequest("cursor is not one this listing gave") from None
        page, following = instance.store.ids(after, _limit(request, _IDS_LIMIT))
        cursor = None
        if following is not None:
            # Opaque to clients, so that the listing may be ordered otherwise one day.
            cursor = base64.urlsafe_b64encode(following.encode()).decode().rstrip("=")
        return _json({"ids": page, "next_cursor": cursor})

    async def one(request: Request) -> Response:
        entry = instance.store.get(request.path_params["record_id"])
        if entry is None:
            return _error(404, "not_found", "no such record")
        return Response(_encoded(instance, entry), media_type="application/json")

    return [
        Route(f"{prefix}/changes", _handled(changes), methods=["GET"]),
        Route(f"{prefix}/ids", _handled(ids), methods=["GET"]),
        Route(f"{prefix}/{{record_id}}", _handled(one), methods=["GET"]),
    ]


def _instance_app(instance: Instance[Any], credentials: Credentials, routes: list[Route]) -> ASGIApp:
    app = Starlette(routes=routes, exception_handlers={HTTPException: _not_found})
    return InstanceMiddleware(app, instance=instance, credentials=credentials, routes=list(app.routes))


def paraply_app(instance: Instance[Any], credentials: Credentials) -> ASGIApp:
    prefix = "/paraply/v1/persons"

    async def of_person(request: Request) -> Response:
        person_number = _person_number(request)
        if person_number is None:
            raise BadRequest("person_number is needed")
        return _items(instance, instance.store.find("person_number", person_number))

    routes = [Route(prefix, _handled(of_person), methods=["GET"]), *_record_routes(instance, prefix)]
    return _instance_app(instance, credentials, routes)


def agresso_app(world: World, instance: AgressoInstance, credentials: Credentials) -> ASGIApp:
    prefix = "/agresso/v1/transactions"

    async def lookup(request: Request) -> Response:
        person_number = _person_number(request)
        ocr = request.query_params.get("ocr")
        if (person_number is None) == (ocr is None):
            raise BadRequest("give either person_number or ocr")
        if person_number is not None:
            return _items(instance, instance.store.find("person_number", person_number))
        return _items(instance, instance.store.find("ocr", ocr or ""))

    async def deferral(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        try:
            status, answer = request_deferral(world, instance, request.headers.get("idempotency-key"), body)
        except DeferralRefused as refused:
            return _error(refused.status, refused.error, refused.message)
        return _json(answer, status)

    routes = [
        Route(prefix, _handled(lookup), methods=["GET"]),
        Route("/agresso/v1/deferrals", _handled(deferral), methods=["POST"]),
        *_record_routes(instance, prefix),
    ]
    return _instance_app(instance, credentials, routes)


# ---------------------------------------------------------------------------------------------------------
# Control
# ---------------------------------------------------------------------------------------------------------


def control_app(world: World, credentials: Credentials, urls: Mapping[str, str]) -> ASGIApp:
    """Knobs, mutations, counts and the people tests may use, behind X-Control-Token."""

    def guarded(handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            token = request.headers.get("x-control-token", "")
            if not _constant_time_equal(token, credentials.control_token):
                return _error(401, "unauthenticated", "the control token was refused")
            return await _handled(handler)(request)

        return checked

    def instance_of(request: Request) -> Instance[Any]:
        instance = world.instance(request.path_params["instance"])
        if instance is None:
            raise HTTPException(404, "no such instance")
        return instance

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    async def instances(request: Request) -> Response:
        return _json(
            {
                "instances": [
                    {
                        "name": instance.name,
                        "kind": instance.kind,
                        "district": instance.district_id or None,
                        "url": urls.get(instance.name),
                        "serving": instance.listener is not None and instance.listener.serving,
                    }
                    for instance in world.instances.values()
                ]
            }
        )

    async def knobs(request: Request) -> Response:
        instance = instance_of(request)
        if request.method == "PUT":
            try:
                instance.knobs.update(await body_of(request), kind=instance.kind)
            except KnobError as error:
                raise BadRequest(str(error)) from None
        elif request.method == "DELETE":
            instance.knobs.reset(instance.defaults)
        # The answer waits for the listener to close or open, so the caller can rely on it at once.
        await instance.settle()
        return _json(instance.knobs.as_json())

    async def mutations(request: Request) -> Response:
        instance = instance_of(request)
        body = await body_of(request)
        op = body.get("op")
        if not isinstance(op, str):
            raise BadRequest("op names the mutation")
        params = {key: value for key, value in body.items() if key != "op"}
        try:
            return _json(mutate(world, instance.name, op, params))
        except MutationError as error:
            return _error(error.status, error.error, error.message)

    async def stats(request: Request) -> Response:
        instance = instance_of(request)
        store = instance.store
        last = store.last_change_us
        return _json(
            {
                "instance": instance.name,
                "requests": instance.stats.as_json(),
                "records": len(store),
                "pending_late_commits": store.pending,
                "changes_applied": store.changes_applied,
                "last_change": None if last is None else format_time(last),
                "serving": instance.listener is not None and instance.listener.serving,
            }
        )

    async def people(request: Request) -> Response:
        district = request.query_params.get("district")
        if district is not None and district not in world.paraply:
            raise BadRequest("district must be one of the city's district ids")
        tag = request.query_params.get("tag")
        if tag is not None and tag not in PEOPLE_TAGS:
            raise BadRequest(f"tag must be one of {', '.join(PEOPLE_TAGS)}")
        return _json({"people": people_of(world, district, tag, _limit(request, _PEOPLE_LIMIT))})

    async def reset(request: Request) -> Response:
        world.reset()
        for instance in world.instances.values():
            await instance.settle()
        return _json({"reset": True, "records": {name: len(i.store) for name, i in world.instances.items()}})

    routes = [
        Route("/control/reset", guarded(reset), methods=["POST"]),
        Route("/control/instances", guarded(instances), methods=["GET"]),
        Route("/control/instances/{instance}/knobs", guarded(knobs), methods=["GET", "PUT", "DELETE"]),
        Route("/control/instances/{instance}/mutations", guarded(mutations), methods=["POST"]),
        Route("/control/instances/{instance}/stats", guarded(stats), methods=["GET"]),
        Route("/control/people", guarded(people), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _not_found})


def _constant_time_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


PEOPLE_TAGS = ("protected", "moved", "fee_payer", "no_fee", "overdue", "invoice_recipient", "queue", "kbf")


def people_of(world: World, district: str | None, tag: str | None, limit: int) -> list[dict[str, Any]]:
    """People with a current decision in `district` (every district when None), by record id, with where
    each of their records is: what a test needs to pick someone and know what to expect."""
    found: list[dict[str, Any]] = []
    districts = [district] if district else list(world.paraply)
    for district_id in districts:
        instance = world.paraply[district_id]
        for entry in instance.store.entries():
            record = entry.record
            if not record.current_decisions:
                continue
            described = _person(world, instance.name, record)
            if tag is None or tag in described["tags"]:
                found.append(described)
                if len(found) == limit:
                    return found
    return found


def _person(world: World, instance_name: str, record: Any) -> dict[str, Any]:
    records = [
        {"instance": other.name, "id": other_record.record_id, "district": other.district_id}
        for other, other_record in world.records_of_person(record.person_number)
    ]
    invoices = world.agresso.store.find("person_number", record.person_number)
    fee = record.fee_basis
    tags = []
    if record.protected_identity:
        tags.append("protected")
    if len(records) > 1:
        tags.append("moved")
    if fee is not None:
        tags.append("fee_payer" if fee.decided_fee_ore > 0 else "no_fee")
        if fee.invoice_recipient is not None:
            tags.append("invoice_recipient")
    if any(entry.record.status == "overdue" for entry in invoices):
        tags.append("overdue")
    if record.extra.get("dagverksamhet_queue"):
        tags.append("queue")
    if record.extra.get("kbf"):
        tags.append("kbf")
    return {
        "person_number": record.person_number,
        "district": record.district_id,
        "instance": instance_name,
        "record_id": record.record_id,
        "records": records,
        "invoice_ids": [entry.record.record_id for entry in invoices],
        "decided_fee_ore": None if fee is None else fee.decided_fee_ore,
        "tags": tags,
    }

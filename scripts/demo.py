"""What an agent does with a caller's consent, step by step, against the services `make run` started:

    .venv/bin/python -m scripts.demo [--district bromma] [--tag fee_payer]

1. picks a person the districts' care systems know (from the stand-ins' control API: a demo aid, not
   something the product has);
2. registers the call as a case for them (case CreateCase);
3. records their consent after the secrecy review (case RecordConsent), which gives a short-lived access
   grant bound to the agent, the person and the case;
4. reads what the contact center may see of them across all districts and Agresso, with the grant (mirror
   GetPersonOverview), and says which sources it comes from and how fresh each is;
5. works out their care fee for this month from what their district records, with the same grant (fees
   CalculateCareFee), and reads the explanation an agent would read out;
6. shows who has read the person's data (the mirror's access log, as the citizen would see it).

Each step prints the `scripts.call` command that does it by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx

import upstreams
from scripts.call import SERVICES, call
from services.common.devissuer import DevIssuer
from support.ports import HOST

ROOT = Path(__file__).resolve().parent.parent
SCOPES = [
    "GRANT_SCOPE_DECISIONS",
    "GRANT_SCOPE_FEES",
    "GRANT_SCOPE_PROVIDERS",
    "GRANT_SCOPE_OFFICER",
    "GRANT_SCOPE_INVOICES",
]


def step(number: int, text: str, service: str, method: str, body: dict[str, Any], extra: str = "") -> None:
    print(f"\n{number}. {text}", flush=True)
    body_text = shlex.quote(json.dumps(body, ensure_ascii=False))
    command = f".venv/bin/python -m scripts.call {service} {method} {body_text}"
    print(f"   {command}{extra}", flush=True)


async def run(district: str, tag: str, base_port: int) -> int:
    issuer = DevIssuer.load_or_create(ROOT / "var" / "dev-issuer")
    agent = issuer.mint(role="agent")
    secrets = upstreams.credentials()
    control = f"http://{HOST}:{upstreams.layout(base_port)['control']}"
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(
            f"{control}/control/people",
            params={"district": district, "tag": tag, "limit": 1},
            headers=secrets.headers("control"),
        )
    if answer.status_code != 200 or not answer.json().get("people"):
        print(f"the stand-ins have nobody in {district} tagged {tag}: {answer.text[:200]}", file=sys.stderr)
        return 1
    person = answer.json()["people"][0]["person_number"]
    print(f"A person of {district} the districts' care systems know: {person}")

    def address(service: str) -> str:
        return f"{HOST}:{SERVICES[service][1]}"

    case_body = {
        "case": {
            "category": "aldreomsorg",
            "caseType": "fakturafraga",
            "caseClass": "information-och-vagledning",
            "personNumber": person,
            "feedbackChannel": "FEEDBACK_CHANNEL_PHONE",
        },
        "contact": {
            "channel": "CHANNEL_PHONE",
            "party": "CONTACT_PARTY_SELF",
            "summary": "Undrar varför avgiften höjts och när fakturan ska vara betald.",
        },
    }
    step(1, "Register the call as a case", "case", "CreateCase", case_body)
    created = json.loads(await call("case", "CreateCase", json.dumps(case_body), address("case"), agent))
    case = created["case"]["name"]
    print(f"   -> {case}")

    consent_body = {
        "parent": case,
        "consent": {"givenBy": "CONSENT_GIVER_PERSON", "verification": "BankID", "scopes": SCOPES},
    }
    step(2, "Record the caller's consent: it gives an access grant", "case", "RecordConsent", consent_body)
    consented = json.loads(
        await call("case", "RecordConsent", json.dumps(consent_body), address("case"), agent)
    )
    grant = consented["accessGrant"]
    print(f"   -> a grant valid until {consented['grantExpireTime']}")

    overview_body = {"personNumber": person, "purpose": case}
    step(
        3,
        "Read the person across all districts with the grant",
        "mirror",
        "GetPersonOverview",
        overview_body,
        " --grant <accessGrant>",
    )
    read = json.loads(
        await call("mirror", "GetPersonOverview", json.dumps(overview_body), address("mirror"), agent, grant)
    )
    overview = read["overview"]
    print(f"   -> {overview.get('summary', '')}")
    for decision in overview.get("decisions", []):
        print(
            f"      decision {decision.get('service')} ({decision.get('law')}) in {decision.get('district')}"
        )
    officer = overview.get("responsibleOfficer", {})
    if officer:
        who = officer.get("officer") or officer.get("team")
        print(f"      responsible officer {who} in {officer.get('district')}")
    withheld = [f"{w.get('section', '')} ({w.get('reason')})" for w in overview.get("withheld", [])]
    print(f"      {len(overview.get('invoices', []))} invoices; withheld: {withheld or 'nothing'}")
    stale = [s["source"] for s in overview.get("sources", []) if s.get("stale")]
    print(f"      {len(overview.get('sources', []))} sources, stale: {stale or 'none'}")

    fee_body = {"personNumber": person, "purpose": case}
    step(
        4,
        "Work out the person's care fee this month, with the same grant",
        "fees",
        "CalculateCareFee",
        fee_body,
        " --grant <accessGrant>",
    )
    try:
        calculated = json.loads(
            await call("fees", "CalculateCareFee", json.dumps(fee_body), address("fees"), agent, grant)
        )
    except grpc.aio.AioRpcError as refused:
        # A person without a fee basis in their district's system, or a district whose agreement
        # withholds it: the refusal says which.
        print(f"   -> {refused.code().name}: {refused.details()}")
    else:
        fee = calculated["fee"]
        total = int(fee.get("total", {}).get("ore", 0)) // 100
        print(f"   -> {total:,} kr for {fee.get('month')}".replace(",", " "))
        for line in fee.get("explanation", []):
            print(f"      {line.get('text')}  [{line.get('citation')}]")

    step(
        5,
        "Who has read the person's data (as the citizen sees it)",
        "mirror",
        "ListAccessLog",
        {},
        f" --role citizen --person-number {person}",
    )
    citizen = issuer.mint(role="citizen", person_number=person)
    log = json.loads(await call("mirror", "ListAccessLog", "{}", address("mirror"), citizen))
    for entry in log.get("entries", [])[:5]:
        when, actor, action = entry.get("time", ""), entry.get("actor"), entry.get("action")
        print(f"   -> {when} {actor} {action} ({entry.get('purpose')})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--district", default="bromma")
    parser.add_argument("--tag", default="fee_payer", help="protected, moved, fee_payer, overdue, …")
    parser.add_argument("--upstreams-base-port", type=int, default=7000)
    arguments = parser.parse_args(argv)
    try:
        return asyncio.run(run(arguments.district, arguments.tag, arguments.upstreams_base_port))
    except (grpc.aio.AioRpcError, httpx.HTTPError) as error:
        print(f"a step failed: {error}; is `make run` up?", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

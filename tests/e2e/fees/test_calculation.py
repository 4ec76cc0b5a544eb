"""A person's care fee through the real services: the fee basis and decisions the stand-ins generated, read
through the mirror with the agent's grant passed on, worked out and explained; the citizen's own; every grant
that does not do; a district whose agreement withholds the fee basis; the mirror down; and a what-if's bad
inputs named field by field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import grpc
from aldredirekt.common.v1 import access_log_pb2
from aldredirekt.common.v1.common_pb2 import Money
from aldredirekt.fees.v1 import fees_pb2 as pb
from aldredirekt.fees.v1 import fees_pb2_grpc

from services.common.grants import GRANT_METADATA_KEY
from support.ports import free_port
from synthcity.care import CareRecord, Household, Insats
from tests.e2e.fees.conftest import MODULE_LOOP, FeesStack, start_fees
from tests.person_numbers import person_number
from tests.rich_errors import error_info, field_violations, reason_of, refused

pytestmark = MODULE_LOOP

MONTH = "2026-11"
# 2026's figures (prisbasbelopp 59 200 kr): 1.4789 and 1.2066 pbb / 12, 0.5392 pbb / 12, in whole kronor.
MINIMIBELOPP_SINGLE = 729_600
MINIMIBELOPP_COHABITING = 595_300
MAXTAXA = 266_000


def with_home_help(record: CareRecord, district: str = "bromma") -> bool:
    return (
        record.district_id == district
        and record.fee_basis is not None
        and any(d.insats is Insats.HEMTJANST for d in record.current_decisions)
        and not any(d.insats is Insats.SARSKILT_BOENDE for d in record.current_decisions)
        and not any(d.law.value == "LSS" for d in record.current_decisions)
    )


def own_income(record: CareRecord) -> int:
    assert record.fee_basis is not None
    return sum(i.monthly_ore for i in record.fee_basis.incomes)


async def calculate(
    stack: FeesStack, person: str, metadata: object, **request: object
) -> pb.CalculateCareFeeResponse:
    answer: pb.CalculateCareFeeResponse = await stack.stub.CalculateCareFee(
        pb.CalculateCareFeeRequest(person_number=person, month=MONTH, **request),  # type: ignore[arg-type]
        metadata=metadata,  # type: ignore[arg-type]
    )
    return answer


async def test_a_single_persons_fee_is_worked_out_from_what_their_district_records(stack: FeesStack) -> None:
    record = stack.person(
        lambda r: with_home_help(r) and r.fee_basis is not None and r.fee_basis.household is Household.SINGLE
    )
    assert record.fee_basis is not None
    answer = await calculate(
        stack, record.person_number, stack.agent(record.person_number), purpose="Frågar om avgiften"
    )
    fee = answer.fee

    assert answer.district == "districts/bromma"
    assert fee.month == MONTH
    assert fee.prisbasbelopp.ore == 5_920_000
    assert fee.avgiftsunderlag.ore == own_income(record)
    assert fee.minimibelopp.ore == MINIMIBELOPP_SINGLE
    assert fee.housing_cost.ore == record.fee_basis.housing_cost_ore
    assert fee.forbehallsbelopp.ore == MINIMIBELOPP_SINGLE + record.fee_basis.housing_cost_ore
    assert fee.avgiftsutrymme.ore == max(0, fee.avgiftsunderlag.ore - fee.forbehallsbelopp.ore)
    assert fee.maxtaxa.ore == MAXTAXA
    assert 0 <= fee.total.ore <= min(MAXTAXA, fee.avgiftsutrymme.ore)
    assert any(line.service == "hemtjanst" for line in fee.lines)
    assert fee.uses_example_figures  # the city's tariff here is an example
    assert all(line.citation for line in fee.explanation)
    # The district's own decided fee comes along for comparison (the stand-ins use a tariff of their own).
    assert answer.decided_fee.ore == record.fee_basis.decided_fee_ore
    assert answer.inputs.housing_cost.ore == record.fee_basis.housing_cost_ore
    assert answer.basis_as_of.seconds > 0
    assert not answer.basis_stale


async def test_a_cohabiting_person_is_reckoned_with_half_the_couples_income_and_told_it_was_assumed(
    stack: FeesStack,
) -> None:
    record = stack.person(
        lambda r: (
            with_home_help(r, "sodermalm")
            and r.fee_basis is not None
            and r.fee_basis.household is Household.COHABITING
        )
    )
    assert record.fee_basis is not None
    partner = sum(i.monthly_ore for i in record.fee_basis.partner_incomes)
    answer = await calculate(stack, record.person_number, stack.agent(record.person_number))
    assert answer.fee.avgiftsunderlag.ore == (own_income(record) + partner) // 2
    assert answer.fee.minimibelopp.ore == MINIMIBELOPP_COHABITING
    housing = record.fee_basis.housing_cost_ore
    assert answer.fee.forbehallsbelopp.ore == MINIMIBELOPP_COHABITING + -(-housing // 2)
    assert answer.inputs.household.relation == pb.RELATION_SPOUSES
    assert any("gifta eller registrerade partner" in a for a in answer.assumptions)


async def test_in_special_housing_the_rent_is_the_housing_cost_of_a_home_under_the_tenancy_act(
    stack: FeesStack,
) -> None:
    record = stack.person(
        lambda r: (
            r.fee_basis is not None
            and r.district_id != "skarholmen"
            and any(d.insats is Insats.SARSKILT_BOENDE for d in r.current_decisions)
        )
    )
    assert record.fee_basis is not None
    answer = await calculate(stack, record.person_number, stack.agent(record.person_number))
    assert answer.inputs.special_housing.rent.ore == record.fee_basis.housing_cost_ore
    assert answer.inputs.special_housing.under_tenancy_act
    assert answer.fee.housing_cost.ore == record.fee_basis.housing_cost_ore
    assert any(line.service == "sarskilt_boende" for line in answer.fee.lines)
    assert any("hyreslagen" in a for a in answer.assumptions)


async def test_a_citizen_reads_their_own_fee_without_a_grant_and_the_read_is_logged(stack: FeesStack) -> None:
    record = stack.person(lambda r: with_home_help(r, "farsta"))
    citizen = stack.citizen(record.person_number)
    answer = await calculate(stack, record.person_number, citizen)
    assert answer.fee.avgiftsunderlag.ore == own_income(record)
    log = await stack.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=record.person_number), metadata=citizen
    )
    entries = [e for e in log.entries if e.action.startswith("fees.CalculateCareFee")]
    assert [(e.purpose, e.actor_role) for e in entries] == [("Mina sidor", "citizen")]
    # Someone else's fee is not a citizen's to read.
    other = stack.person(lambda r: with_home_help(r, "farsta"))
    error = await refused(calculate(stack, other.person_number, citizen))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_every_grant_that_does_not_cover_the_fee_is_refused_before_anything_is_read(
    stack: FeesStack,
) -> None:
    record = stack.person(lambda r: with_home_help(r))
    person = record.person_number
    other = stack.person(lambda r: with_home_help(r)).person_number
    agent = stack.auth("agent", subject="agent-astrid")
    cases = {
        "GRANT_REQUIRED": agent,
        "GRANT_INVALID": (*agent, (GRANT_METADATA_KEY, "eyJhbGciOiJFUzI1NiJ9.e30.forged")),
        "GRANT_OTHER_PERSON": stack.agent(other),
        "GRANT_NOT_YOURS": (*agent, (GRANT_METADATA_KEY, stack.grant(person, agent="agent-bertil"))),
        "GRANT_SCOPE_MISSING": stack.agent(person, scopes=("decisions", "invoices")),
    }
    for reason, metadata in cases.items():
        error = await refused(calculate(stack, person, metadata))
        assert (error.code(), reason_of(error)) == (grpc.StatusCode.PERMISSION_DENIED, reason), reason
    expired = stack.grant(
        person, issued=datetime.now(UTC) - timedelta(hours=2), lifetime=timedelta(minutes=30)
    )
    error = await refused(calculate(stack, person, (*agent, (GRANT_METADATA_KEY, expired))))
    assert reason_of(error) == "GRANT_INVALID"
    without_decisions = await refused(calculate(stack, person, stack.agent(person, scopes=("fees",))))
    assert reason_of(without_decisions) == "GRANT_SCOPE_MISSING"
    assert error_info(without_decisions).metadata["scope"] == "decisions"
    log = await stack.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=person), metadata=stack.citizen(person)
    )
    assert not log.entries


async def test_a_district_whose_agreement_withholds_the_fee_basis_gets_a_clear_refusal(
    stack: FeesStack,
) -> None:
    record = stack.person(lambda r: r.district_id == "skarholmen" and r.fee_basis is not None)
    error = await refused(calculate(stack, record.person_number, stack.agent(record.person_number)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(error) == "FEE_BASIS_WITHHELD"
    assert error_info(error).metadata["district"] == "districts/skarholmen"
    assert "agreement" in (error.details() or "")


async def test_a_person_without_a_fee_basis_or_unknown_to_every_district_is_refused_not_charged_zero(
    stack: FeesStack,
) -> None:
    record = stack.person(lambda r: r.fee_basis is None and r.district_id != "skarholmen")
    error = await refused(calculate(stack, record.person_number, stack.agent(record.person_number)))
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_FEE_BASIS")
    nobody = person_number(date(1931, 2, 3), serial="981")
    assert nobody not in {r.person_number for r in stack.care.records}
    error = await refused(calculate(stack, nobody, stack.agent(nobody)))
    assert reason_of(error) == "NO_FEE_BASIS"


async def test_with_the_mirror_down_the_fee_is_unavailable(stack: FeesStack) -> None:
    record = stack.person(lambda r: with_home_help(r))
    alone = await start_fees(
        stack, FEES_MIRROR_ADDRESS=f"127.0.0.1:{free_port()}", FEES_MIRROR_TIMEOUT_SECONDS="1"
    )
    try:
        async with grpc.aio.insecure_channel(alone.address) as channel:
            stub = fees_pb2_grpc.FeeServiceStub(channel)  # type: ignore[no-untyped-call]
            error = await refused(
                stub.CalculateCareFee(
                    pb.CalculateCareFeeRequest(person_number=record.person_number, month=MONTH),
                    metadata=stack.agent(record.person_number),
                )
            )
    finally:
        await alone.stop(0)
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.UNAVAILABLE, "MIRROR_UNAVAILABLE")


async def test_a_what_if_names_every_bad_field_and_answers_good_inputs(stack: FeesStack) -> None:
    agent = stack.auth("agent")
    error = await refused(
        stack.stub.CalculateCareFeeWhatIf(
            pb.CalculateCareFeeWhatIfRequest(
                month="2026-02",
                inputs=pb.FeeInputs(
                    incomes=[
                        pb.Income(kind=pb.INCOME_KIND_PENSION, monthly=Money(ore=1_500_000)),
                        pb.Income(kind=pb.INCOME_KIND_PENSION, monthly=Money(ore=10)),
                    ],
                    services=pb.ServicesReceived(hemtjanst_hours=float("inf"), korttidsvard_days=29),
                    adjustment=pb.MinimumAdjustment(amount=Money(ore=10_000)),
                ),
            ),
            metadata=agent,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [
        "inputs.incomes[1].kind",
        "inputs.services.hemtjanst_hours",
        "inputs.services.korttidsvard_days",
        "inputs.adjustment.reason",
    ]
    below_zero = await refused(
        stack.stub.CalculateCareFeeWhatIf(
            pb.CalculateCareFeeWhatIfRequest(
                month=MONTH,
                inputs=pb.FeeInputs(
                    adjustment=pb.MinimumAdjustment(amount=Money(ore=-900_000), reason="god man")
                ),
            ),
            metadata=agent,
        )
    )
    assert field_violations(below_zero) == ["inputs.adjustment.amount"]
    answer = await stack.stub.CalculateCareFeeWhatIf(
        pb.CalculateCareFeeWhatIfRequest(
            month=MONTH,
            inputs=pb.FeeInputs(
                incomes=[pb.Income(kind=pb.INCOME_KIND_PENSION, monthly=Money(ore=2_500_000))],
                housing_cost=Money(ore=700_000),
                services=pb.ServicesReceived(hemtjanst_hours=60, trygghetslarm=True),
            ),
        ),
        metadata=stack.auth("officer", unit="units/bromma-bestallarenhet"),
    )
    # 25 000 − (7 296 + 7 000) = 10 704 kr of room; the example tariff asks more than the cap allows.
    assert answer.fee.avgiftsutrymme.ore == 1_070_400
    assert answer.fee.total.ore == MAXTAXA

"""The stand-ins' credentials and ports, derived from seeds."""

from __future__ import annotations

from synthcity.city import DISTRICTS
from upstreams import credentials, layout, sources_document


def test_credentials_and_layout_are_derived_from_their_seeds():
    one, again, other = credentials(1), credentials(1), credentials(2)
    ports = layout(7000)

    assert one == again
    assert one != other
    assert one.agresso_api_key not in repr(one)
    assert one.paraply_passwords["bromma"] not in repr(one)
    assert ports["agresso"] == 7000
    assert ports["control"] == 7099
    assert [ports[f"paraply-{d.district_id}"] for d in DISTRICTS] == list(range(7001, 7012))
    sources = sources_document({name: f"http://h:{port}" for name, port in ports.items()})["sources"]
    assert len(sources) == 12
    secrets = {str(s.get("password_env") or s.get("api_key_env")) for s in sources}
    assert set(one.environment()) == secrets

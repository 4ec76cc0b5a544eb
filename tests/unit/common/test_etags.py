from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument, StaleEtag
from services.common.etags import check_etag, etag_for

UNIT = "units/farsta-bestallarenhet"


def test_an_etag_is_the_same_for_the_same_version_of_a_resource():
    assert etag_for(UNIT, 3) == etag_for(UNIT, 3)


def test_every_revision_and_every_resource_has_its_own_etag():
    etags = {etag_for(UNIT, 1), etag_for(UNIT, 2), etag_for("units/vasterort", 1), etag_for("units/farst", 1)}

    assert len(etags) == 4


def test_an_etag_is_opaque_and_short():
    etag = etag_for(UNIT, 1)

    assert len(etag) == 20
    assert UNIT not in etag


def test_an_update_with_the_etag_it_read_goes_through():
    check_etag(name=UNIT, revision=4, sent=etag_for(UNIT, 4))


def test_an_update_made_on_an_older_read_is_refused_as_stale():
    with pytest.raises(StaleEtag) as caught:
        check_etag(name=UNIT, revision=5, sent=etag_for(UNIT, 4))

    assert caught.value.reason == "STALE_ETAG"
    assert caught.value.metadata == {"resource": UNIT}


def test_an_etag_of_another_resource_is_refused_as_stale():
    with pytest.raises(StaleEtag):
        check_etag(name=UNIT, revision=1, sent=etag_for("units/vasterort", 1))


@pytest.mark.parametrize("field", ["etag", "unit.etag"])
def test_an_update_without_an_etag_is_refused_naming_the_field(field: str):
    with pytest.raises(InvalidArgument) as caught:
        check_etag(name=UNIT, revision=1, sent="", field=field)

    assert [v.field for v in caught.value.violations] == [field]

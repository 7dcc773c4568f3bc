"""The community ServiceNow client pysnow against the workbridge ServiceNow simulator.

Usage: python servicenow_pysnow.py HOST:PORT USER PASSWORD

The simulator runs with --tls; trust for it comes from REQUESTS_CA_BUNDLE. Prints one line per
check and a closing "N passed, N failed"; exits non-zero when a check fails.
"""
import os
import sys
import tempfile

import pysnow

from checks import check, finish


host, user, password = sys.argv[1:4]
client = pysnow.Client(host=host, user=user, password=password, use_ssl=True)
incident = client.resource(api_path="/table/incident")
state = {}


@check("display values with Python's True (sysparm_display_value=True)")
def _():
    r = incident.get(query={"active": "true"}, limit=5, display_value=True, exclude_reference_link=True)
    records = r.all()
    assert len(records) == 5, len(records)
    for rec in records:
        # a display value, not the stored choice value
        assert not rec["urgency"].isdigit(), rec["urgency"]
        # exclude_reference_link=True: a reference is its display text, no link object
        assert not isinstance(rec["caller_id"], dict), rec["caller_id"]
    fresh = client.resource(api_path="/table/incident")
    raw = fresh.get(query={"active": "true"}, limit=1).all()[0]
    assert raw["urgency"].isdigit(), raw["urgency"]
    assert isinstance(raw["caller_id"], dict) and "link" in raw["caller_id"], raw["caller_id"]


@check("Link-header paging follows rel=next to the end; True suppresses the header")
def _():
    paged = pysnow.Client(
        host=host, user=user, password=password, use_ssl=True, request_params={"sysparm_limit": 7}
    )
    everything = list(paged.query(table="incident", query={"active": "true"}).get_multiple())
    capped = list(client.query(table="incident", query={"active": "true"}).get_multiple(limit=7))
    assert len(capped) == 7, len(capped)
    counted = incident.get(query={"active": "true"}, limit=10000).all()
    assert len(everything) == len(counted) and len(everything) > 14, (len(everything), len(counted))
    ids = [r["sys_id"] for r in everything]
    assert len(set(ids)) == len(ids), "a record was read twice"


@check("insert, update, delete")
def _():
    created = incident.create(payload={"short_description": "disk full", "urgency": "2"}).one()
    state["sys_id"] = created["sys_id"]
    assert created["number"].startswith("INC"), created["number"]
    updated = incident.update(query={"sys_id": state["sys_id"]}, payload={"short_description": "disk emptied"}).one()
    assert updated["short_description"] == "disk emptied"
    again = incident.get(query={"sys_id": state["sys_id"]}).one()
    assert again["short_description"] == "disk emptied"


@check("attachments: upload, list, delete")
def _():
    with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as f:
        f.write(b"log line\n")
        path = f.name
    try:
        uploaded = incident.attachments.upload(state["sys_id"], path, name="trace.log").one()
        assert uploaded["file_name"] == "trace.log", uploaded
        listed = list(incident.attachments.get(state["sys_id"]))
        assert [a["file_name"] for a in listed] == ["trace.log"], listed
        incident.attachments.delete(listed[0]["sys_id"])
        assert list(incident.attachments.get(state["sys_id"])) == []
    finally:
        os.unlink(path)


@check("delete the record")
def _():
    result = incident.delete(query={"sys_id": state["sys_id"]})
    assert result["status"] == "record deleted", result
    assert incident.get(query={"sys_id": state["sys_id"]}).all() == []


finish()

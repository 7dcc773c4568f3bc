"""ServiceNow's own Python client (pysnc) against the workbridge ServiceNow simulator.

Usage: python servicenow_pysnc.py INSTANCE_URL USER PASSWORD CA_PEM

pysnc talks https only; the simulator runs with --tls and CA_PEM is its certificate. Prints
one line per check and a closing "N passed, N failed"; exits non-zero when a check fails.
"""
import sys

from pysnc import ServiceNowClient

from checks import check, finish

instance, user, password, ca = sys.argv[1:5]
client = ServiceNowClient(instance, (user, password), verify=ca)
state = {}


@check("plain http is refused by the client, so the simulator serves https")
def _():
    try:
        ServiceNowClient(instance.replace("https://", "http://"), (user, password))
    except Exception:  # noqa: BLE001 - pysnc raises its own exception type here
        return
    raise AssertionError("pysnc accepted http://")


@check("encoded query with ORDERBY over several pages")
def _():
    gr = client.GlideRecord("incident", batch_size=7)
    gr.add_encoded_query("active=true^ORDERBYnumber")
    gr.query()
    numbers = [r.number.get_value() for r in gr]
    assert len(numbers) > 7 * 2, len(numbers)
    assert numbers == sorted(numbers), numbers[:10]
    assert len(set(numbers)) == len(numbers), "a record was read twice"
    state["count"] = len(numbers)
    every = client.GlideRecord("incident", batch_size=50)
    every.add_query("active", "true")
    every.query()
    assert len(every) == len(numbers), (len(every), len(numbers))


@check("insert, get, update")
def _():
    gr = client.GlideRecord("incident")
    gr.initialize()
    gr.short_description = "printer on fire"
    gr.urgency = "1"
    sys_id = gr.insert()
    assert sys_id, "no sys_id"
    state["sys_id"] = str(sys_id)
    got = client.GlideRecord("incident")
    assert got.get(state["sys_id"])
    assert got.short_description.get_value() == "printer on fire"
    assert got.number.get_value().startswith("INC"), got.number.get_value()
    got.short_description = "printer no longer on fire"
    assert got.update()
    again = client.GlideRecord("incident")
    assert again.get(state["sys_id"])
    assert again.short_description.get_value() == "printer no longer on fire"
    # display values come with the values (sysparm_display_value=all)
    assert again.urgency.get_display_value() != "", again.urgency.get_display_value()


@check("attachments: add, list, read, delete")
def _():
    gr = client.GlideRecord("incident")
    assert gr.get(state["sys_id"])
    gr.add_attachment("trace.log", b"log line\n", "text/plain")
    att = gr.get_attachments()
    names = [a.file_name.get_value() if hasattr(a.file_name, "get_value") else a.file_name for a in att]
    assert names == ["trace.log"], names
    att = gr.get_attachments()
    for a in att:
        assert a.read() == b"log line\n"
        a.delete()
    assert len(list(gr.get_attachments())) == 0


@check("batch delete through the Batch API")
def _():
    for i in range(3):
        gr = client.GlideRecord("incident")
        gr.initialize()
        gr.short_description = f"batch victim {i}"
        assert gr.insert()
    gr = client.GlideRecord("incident")
    gr.add_query("short_description", "STARTSWITH", "batch victim")
    gr.query()
    assert len(gr) == 3, len(gr)
    assert gr.delete_multiple()
    gone = client.GlideRecord("incident")
    gone.add_query("short_description", "STARTSWITH", "batch victim")
    gone.query()
    assert len(gone) == 0, len(gone)


finish()

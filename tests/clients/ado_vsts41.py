"""Microsoft's 4.1 Python clients (the `vsts` package) against the simulator as TFS 2018.

Usage: python ado_vsts41.py COLLECTION_URL PROJECT PAT

Trust for an https simulator comes from REQUESTS_CA_BUNDLE. Prints one line per check and a
closing "N passed, N failed"; exits non-zero when a check fails.
"""
import io
import sys

from msrest.authentication import BasicAuthentication
from vsts.exceptions import VstsServiceError
from vsts.vss_connection import VssConnection
from vsts.work_item_tracking.v4_1.models import JsonPatchOperation, TeamContext, Wiql

from checks import check, finish

url, project, pat = sys.argv[1:4]
connection = VssConnection(base_url=url, creds=BasicAuthentication("", pat))
wit = connection.get_client("vsts.work_item_tracking.v4_1.work_item_tracking_client.WorkItemTrackingClient")
state = {}


def op(path, value, kind="add"):
    return JsonPatchOperation(op=kind, path=path, value=value)


@check("create a Bug with a title alone; identities are strings")
def _():
    w = wit.create_work_item([op("/fields/System.Title", "from the 4.1 client")], project, "Bug")
    assert w.rev == 1 and w.fields["System.State"] == "New", w.fields
    assert isinstance(w.fields["System.CreatedBy"], str) and "<" in w.fields["System.CreatedBy"]
    state["id"] = w.id


@check("update with test /rev and a comment in System.History")
def _():
    w = wit.update_work_item(
        [op("/rev", 1, "test"), op("/fields/System.Title", "renamed"), op("/fields/System.History", "Seen by QA")],
        state["id"],
        project,
    )
    assert w.rev == 2 and w.fields["System.Title"] == "renamed"


@check("a stale rev is refused with 412")
def _():
    try:
        wit.update_work_item([op("/rev", 1, "test"), op("/fields/System.Title", "lost")], state["id"], project)
    except VstsServiceError as e:
        assert e.type_key == "TestPatchOperationFailedException", e.type_key
        return
    raise AssertionError("the stale update was accepted")


@check("WIQL")
def _():
    q = Wiql(query=f"SELECT [System.Id] FROM WorkItems WHERE [System.Id] = {state['id']}")
    r = wit.query_by_wiql(q, team_context=TeamContext(project=project))
    assert [w.id for w in r.work_items] == [state["id"]], r.work_items


@check("get_work_items with fields")
def _():
    r = wit.get_work_items([state["id"]], project, fields=["System.Id", "System.Title"])
    assert [w.fields["System.Title"] for w in r] == ["renamed"], r


@check("revisions and updates, all and one; revisedBy is an IdentityRef")
def _():
    revs = wit.get_revisions(state["id"])
    assert [r.rev for r in revs] == [1, 2], [r.rev for r in revs]
    assert wit.get_revision(state["id"], 1).fields["System.Title"] == "from the 4.1 client"
    ups = wit.get_updates(state["id"])
    assert len(ups) == 2 and ups[1].fields["System.Title"].new_value == "renamed"
    one = wit.get_update(state["id"], 2)
    assert one.rev == 2 and one.revised_by.display_name and "<" in one.revised_by.name, one.revised_by


@check("revision-based comments")
def _():
    c = wit.get_comments(state["id"], project)
    assert [x.text for x in c.comments] == ["Seen by QA"], c.comments
    assert c.comments[0].revised_by.name, c.comments[0].revised_by
    one = wit.get_comment(state["id"], 2, project)
    assert one.text == "Seen by QA"


@check("attachment uploaded, linked by relation and downloaded")
def _():
    ref = wit.create_attachment(io.BytesIO(b"log line\n"), project, file_name="trace.log")
    wit.update_work_item(
        [op("/relations/-", {"rel": "AttachedFile", "url": ref.url, "attributes": {"comment": "trace"}})],
        state["id"],
        project,
    )
    w = wit.get_work_item(state["id"], project, expand="Relations")
    assert any(r.rel == "AttachedFile" and ref.id in r.url for r in w.relations), w.relations
    content = b"".join(wit.get_attachment_content(ref.id, project))
    assert content == b"log line\n", content


@check("type states and fields")
def _():
    states = [s.name for s in wit.get_work_item_type_states(project, "Bug")]
    assert states[:4] == ["New", "Active", "Resolved", "Closed"], states
    fields = wit.get_work_item_type_fields_with_references(project, "Bug", expand="allowedValues")
    by = {f.reference_name: f for f in fields}
    assert by["System.State"].default_value == "New" and "Active" in by["System.State"].allowed_values
    assigned = wit.get_field("System.AssignedTo", project)
    assert assigned.is_identity and assigned.type == "string", (assigned.is_identity, assigned.type)


finish()

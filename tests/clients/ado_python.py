"""Microsoft's Python SDK for Azure DevOps (azure-devops 7.1) against the workbridge simulator.

Usage: python ado_python.py COLLECTION_URL PROJECT PAT

Trust for an https simulator comes from REQUESTS_CA_BUNDLE. Prints one line per check and a
closing "N passed, N failed"; exits non-zero when a check fails.
"""
import io
import sys

from azure.devops.connection import Connection
from azure.devops.exceptions import AzureDevOpsServiceError
from azure.devops.v7_1.work_item_tracking.models import (
    CommentCreate,
    JsonPatchOperation,
    TeamContext,
    Wiql,
    WorkItemBatchGetRequest,
)
from msrest.authentication import BasicAuthentication

from checks import check, finish

url, project, pat = sys.argv[1:4]
connection = Connection(base_url=url, creds=BasicAuthentication("", pat))
wit = connection.clients_v7_1.get_work_item_tracking_client()
state = {}


def op(path, value, kind="add"):
    return JsonPatchOperation(op=kind, path=path, value=value)


@check("create a Bug with a title alone")
def _():
    w = wit.create_work_item([op("/fields/System.Title", "from the Python SDK")], project, "Bug")
    assert w.rev == 1 and w.fields["System.State"] == "New", w.fields
    assert isinstance(w.fields["System.CreatedBy"], dict), w.fields["System.CreatedBy"]
    state["id"] = w.id


@check("update with test /rev")
def _():
    w = wit.update_work_item(
        [op("/rev", 1, "test"), op("/fields/System.Title", "renamed")], state["id"], project
    )
    assert w.rev == 2 and w.fields["System.Title"] == "renamed"


@check("a stale rev is refused with 412")
def _():
    try:
        wit.update_work_item(
            [op("/rev", 1, "test"), op("/fields/System.Title", "lost")], state["id"], project
        )
    except AzureDevOpsServiceError as e:
        assert e.type_key == "TestPatchOperationFailedException", e.type_key
        return
    raise AssertionError("the stale update was accepted")


@check("WIQL at project and team level")
def _():
    q = Wiql(query=f"SELECT [System.Id] FROM WorkItems WHERE [System.Id] = {state['id']}")
    r = wit.query_by_wiql(q, team_context=TeamContext(project=project))
    assert [w.id for w in r.work_items] == [state["id"]], r.work_items
    r = wit.query_by_wiql(q, team_context=TeamContext(project=project, team=f"{project} Team"))
    assert [w.id for w in r.work_items] == [state["id"]]


@check("get_work_items_batch with fields")
def _():
    r = wit.get_work_items_batch(
        WorkItemBatchGetRequest(ids=[state["id"]], fields=["System.Id", "System.Title"]), project
    )
    assert [w.fields["System.Title"] for w in r] == ["renamed"], r


@check("revisions and updates, all and one")
def _():
    revs = wit.get_revisions(state["id"], project)
    assert [r.rev for r in revs] == [1, 2], [r.rev for r in revs]
    assert wit.get_revision(state["id"], 1, project).fields["System.Title"] == "from the Python SDK"
    ups = wit.get_updates(state["id"], project)
    assert len(ups) == 2 and ups[1].fields["System.Title"].new_value == "renamed"
    one = wit.get_update(state["id"], 2, project)
    assert one.rev == 2 and one.revised_by.display_name, one.revised_by


@check("comments: add and list")
def _():
    c = wit.add_comment(CommentCreate(text="Seen by QA"), project, state["id"])
    listed = wit.get_comments(project, state["id"])
    assert [x.text for x in listed.comments] == ["Seen by QA"], listed.comments
    assert listed.comments[0].id == c.id


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
    assigned = wit.get_work_item_field("System.AssignedTo", project)
    assert assigned.is_identity and assigned.type == "string", (assigned.is_identity, assigned.type)


finish()

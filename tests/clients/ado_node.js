// Microsoft's Node client for Azure DevOps (azure-devops-node-api) against the simulator.
//
// Usage: node ado_node.js COLLECTION_URL PROJECT PAT
//
// Trust for an https simulator comes from NODE_EXTRA_CA_CERTS. Prints one line per check and a
// closing "N passed, N failed"; exits non-zero when a check fails.
"use strict";
const { Readable } = require("stream");
const azdev = require("azure-devops-node-api");
const WIT = require("azure-devops-node-api/interfaces/WorkItemTrackingInterfaces");

const [url, project, pat] = process.argv.slice(2);
const connection = new azdev.WebApi(url, azdev.getPersonalAccessTokenHandler(pat));
const results = { passed: 0, failed: 0 };
const state = {};

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

async function check(name, f) {
  try {
    await f();
    results.passed += 1;
    console.log(`ok     ${name}`);
  } catch (e) {
    results.failed += 1;
    console.log(`FAILED ${name}\n${e && e.stack ? e.stack : e}`);
  }
}

async function readAll(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

(async () => {
  const wit = await connection.getWorkItemTrackingApi();
  const op = (path, value, kind = "add") => ({ op: kind, path, value });

  await check("create a Bug with a title alone", async () => {
    const w = await wit.createWorkItem(null, [op("/fields/System.Title", "from the Node client")], project, "Bug");
    assert(w.rev === 1 && w.fields["System.State"] === "New", JSON.stringify(w.fields));
    assert(typeof w.fields["System.CreatedBy"] === "object", "identities are objects");
    state.id = w.id;
  });

  await check("update with test /rev", async () => {
    const w = await wit.updateWorkItem(null, [op("/rev", 1, "test"), op("/fields/System.Title", "renamed")], state.id, project);
    assert(w.rev === 2 && w.fields["System.Title"] === "renamed", JSON.stringify(w.fields));
  });

  await check("a stale rev is refused with 412", async () => {
    let refused = false;
    try {
      await wit.updateWorkItem(null, [op("/rev", 1, "test"), op("/fields/System.Title", "lost")], state.id, project);
    } catch (e) {
      refused = e.statusCode === 412;
      assert(refused, `status ${e.statusCode}: ${e.message}`);
    }
    assert(refused, "the stale update was accepted");
  });

  await check("WIQL at project and team level", async () => {
    const wiql = { query: `SELECT [System.Id] FROM WorkItems WHERE [System.Id] = ${state.id}` };
    let r = await wit.queryByWiql(wiql, { project });
    assert(r.workItems.map((w) => w.id).join() === String(state.id), JSON.stringify(r.workItems));
    r = await wit.queryByWiql(wiql, { project, team: `${project} Team` });
    assert(r.workItems.map((w) => w.id).join() === String(state.id), "team level");
  });

  await check("getWorkItemsBatch with fields", async () => {
    const r = await wit.getWorkItemsBatch({ ids: [state.id], fields: ["System.Id", "System.Title"] }, project);
    assert(r.length === 1 && r[0].fields["System.Title"] === "renamed", JSON.stringify(r));
  });

  await check("revisions and updates, all and one; $expand as a number", async () => {
    const revs = await wit.getRevisions(state.id, undefined, undefined, WIT.WorkItemExpand.Fields, project);
    assert(revs.map((r) => r.rev).join() === "1,2", revs.map((r) => r.rev).join());
    const one = await wit.getRevision(state.id, 1, WIT.WorkItemExpand.Fields, project);
    assert(one.fields["System.Title"] === "from the Node client", JSON.stringify(one.fields));
    const ups = await wit.getUpdates(state.id, undefined, undefined, project);
    assert(ups.length === 2 && ups[1].fields["System.Title"].newValue === "renamed", JSON.stringify(ups));
    const up = await wit.getUpdate(state.id, 2, project);
    assert(up.rev === 2 && up.revisedBy.displayName, JSON.stringify(up.revisedBy));
  });

  await check("comments: add and list", async () => {
    const c = await wit.addComment({ text: "Seen by QA" }, project, state.id);
    const list = await wit.getComments(project, state.id);
    assert(list.comments.map((x) => x.text).join() === "Seen by QA", JSON.stringify(list.comments));
    assert(list.comments[0].id === c.id, "ids agree");
  });

  await check("attachment uploaded, linked by relation and downloaded", async () => {
    const ref = await wit.createAttachment(null, Readable.from([Buffer.from("log line\n")]), "trace.log", undefined, project);
    await wit.updateWorkItem(null, [op("/relations/-", { rel: "AttachedFile", url: ref.url, attributes: { comment: "trace" } })], state.id, project);
    const w = await wit.getWorkItem(state.id, undefined, undefined, WIT.WorkItemExpand.Relations, project);
    assert((w.relations || []).some((r) => r.rel === "AttachedFile" && r.url.includes(ref.id)), JSON.stringify(w.relations));
    const body = await readAll(await wit.getAttachmentContent(ref.id, undefined, project));
    assert(body.toString() === "log line\n", body.toString());
  });

  await check("type states and fields", async () => {
    const states = (await wit.getWorkItemTypeStates(project, "Bug")).map((s) => s.name);
    assert(states.slice(0, 4).join() === "New,Active,Resolved,Closed", states.join());
    const fields = await wit.getWorkItemTypeFieldsWithReferences(project, "Bug", WIT.WorkItemTypeFieldsExpandLevel.AllowedValues);
    const state = fields.find((f) => f.referenceName === "System.State");
    assert(state.defaultValue === "New" && state.allowedValues.includes("Active"), JSON.stringify(state));
    const assigned = await wit.getField("System.AssignedTo", project);
    assert(assigned.isIdentity === true, JSON.stringify(assigned));
  });

  console.log(`${results.passed} passed, ${results.failed} failed`);
  process.exit(results.failed ? 1 : 0);
})().catch((e) => {
  console.log(`FAILED setup\n${e && e.stack ? e.stack : e}`);
  console.log(`${results.passed} passed, ${results.failed + 1} failed`);
  process.exit(1);
});

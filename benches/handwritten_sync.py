"""The escalation sync as an integrator writes it by hand, for comparison in `sync_scale`.

ServiceNow incidents of category `software` become Azure DevOps Bugs; each Bug's state is
written back to the ticket's `u_dev_status`. The straightforward way with `requests`: page
through the tickets, ask Azure DevOps per ticket whether its Bug exists (WIQL on the ticket
number), create the missing Bug, and PATCH the ticket.

    python3 benches/handwritten_sync.py SERVICENOW_URL AZURE_DEVOPS_COLLECTION_URL
"""

import html
import sys

import requests

PROJECT = "Fabrikam"
DEV_STATUS = {"New": "New", "Active": "In development", "Resolved": "Fixed, awaiting release",
              "Closed": "Released"}
PRIORITY = {"1": "1", "2": "2", "3": "3", "4": "4", "5": "4"}


def main(sn_url, ado_url):
    sn = requests.Session()
    sn.auth = ("admin", "admin")
    sn.headers["Accept"] = "application/json"
    ado = requests.Session()
    ado.auth = ("", "TOKEN")
    offset = 0
    while True:
        r = sn.get(f"{sn_url}/api/now/table/incident", params={
            "sysparm_query": "category=software^ORu_escalate_to_dev=true^ORDERBYsys_created_on",
            "sysparm_fields": "sys_id,number,short_description,description,priority",
            "sysparm_limit": 1000,
            "sysparm_offset": offset,
        })
        r.raise_for_status()
        tickets = r.json()["result"]
        if not tickets:
            break
        for t in tickets:
            sync_ticket(sn, ado, sn_url, ado_url, t)
        offset += len(tickets)


def sync_ticket(sn, ado, sn_url, ado_url, t):
    wiql = {"query": "SELECT [System.Id] FROM WorkItems WHERE [Custom.ServiceNowTicket] = '"
                     + t["number"].replace("'", "''") + "'"}
    r = ado.post(f"{ado_url}/{PROJECT}/_apis/wit/wiql?api-version=7.1", json=wiql)
    r.raise_for_status()
    if r.json()["workItems"]:
        return  # already escalated
    steps = "<br>".join(html.escape(line) for line in t["description"].split("\n"))
    fields = {
        "System.Title": f"{t['number']}: {t['short_description']}"[:255],
        "Microsoft.VSTS.TCM.ReproSteps": steps,
        "Microsoft.VSTS.Common.Priority": PRIORITY.get(t.get("priority", ""), "3"),
        "Microsoft.VSTS.Common.Severity": "2 - High",
        "Custom.ServiceNowTicket": t["number"],
    }
    patch = [{"op": "add", "path": f"/fields/{k}", "value": v} for k, v in fields.items()]
    r = ado.post(f"{ado_url}/{PROJECT}/_apis/wit/workitems/$Bug?api-version=7.1", json=patch,
                 headers={"Content-Type": "application/json-patch+json"})
    r.raise_for_status()
    state = r.json()["fields"]["System.State"]
    r = sn.patch(f"{sn_url}/api/now/table/incident/{t['sys_id']}",
                 json={"u_dev_status": DEV_STATUS.get(state, state)})
    r.raise_for_status()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

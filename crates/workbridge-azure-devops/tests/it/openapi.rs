//! Every request the adapter sends and every answer the simulator gives, checked against
//! Microsoft's OpenAPI (Swagger 2.0) specification of Work Item Tracking: 7.1 for Services,
//! the on-premises 4.1 specification for TFS 2018.
//!
//! The specifications come from the same checkout as the recorded responses (see
//! [`crate::recorded`]). Checked: each exchange matches an operation of the specification
//! (method and route, the `{project}` and `{team}` segments optional as on the real servers);
//! a JSON request body has the shape of the operation's body parameter; a 2xx JSON answer has
//! the shape of its response, with the one documented deviation of the specifications
//! (collections declared as arrays come wrapped as `{count, value}`). Objects may carry only
//! the properties their definition names: a simulator that invents a member fails.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};
use workbridge_azure_devops::ServerVersion;
use workbridge_core::{
    ChangeOptions, CreateOptions, Cursor, FieldMap, ItemType, NewAttachment, NewComment,
    Repository, RepositoryExt, UpdateOptions, Write,
};
use workbridge_sim::Exchange;
use workbridge_sim::azure_devops::ServerVersion as SimVersion;

struct Spec {
    doc: Value,
}

impl Spec {
    fn load(path: &Path) -> Spec {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Spec {
            doc: serde_json::from_str(text.trim_start_matches('\u{feff}')).unwrap(),
        }
    }

    fn def(&self, r: &str) -> &Value {
        let name = r.trim_start_matches("#/definitions/");
        &self.doc["definitions"][name]
    }

    /// The operation an exchange is for: method and path, the first segment being the
    /// organization or collection, `{project}` and `{team}` optional.
    fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let want: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, ops) in self.doc["paths"].as_object()? {
            let Some(op) = ops.get(method.to_ascii_lowercase()) else {
                continue;
            };
            let segs: Vec<&str> = template.trim_matches('/').split('/').collect();
            for drop_project in [false, true] {
                for drop_team in [false, true] {
                    let variant: Vec<&str> = segs
                        .iter()
                        .copied()
                        .filter(|s| !(drop_project && *s == "{project}"))
                        .filter(|s| !(drop_team && *s == "{team}"))
                        .collect();
                    if variant.len() != want.len() {
                        continue;
                    }
                    let mut literal = 0;
                    let fits = variant.iter().zip(&want).all(|(t, w)| {
                        if t.starts_with("${") {
                            w.starts_with('$') || w.starts_with("%24")
                        } else if t.starts_with('{') {
                            true
                        } else {
                            literal += 1;
                            t.eq_ignore_ascii_case(w)
                        }
                    });
                    if fits && best.as_ref().is_none_or(|b| literal > b.0) {
                        best = Some((literal, template.as_str(), op));
                    }
                }
            }
        }
        best.map(|(_, t, o)| (t, o))
    }

    /// Checks `v` against `schema`, naming each mismatch by its JSON path.
    fn check(&self, v: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            if r == "#/definitions/ReferenceLinks" {
                // The documented deviation: on the wire the links are the object's own
                // members, each `{href}`, not under a `links` member.
                return self.check_links(v, at, errors);
            }
            return self.check(v, self.def(r), at, errors);
        }
        if v.is_null() {
            return;
        }
        let ty = schema.get("type").and_then(Value::as_str);
        if ty == Some("array") || schema.get("items").is_some() {
            let Some(items) = v.as_array() else {
                errors.push(format!("{at}: expected an array, found {}", short(v)));
                return;
            };
            for (i, x) in items.iter().enumerate() {
                self.check(x, &schema["items"], &format!("{at}[{i}]"), errors);
            }
            return;
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let ok = values.iter().any(|e| match (e, v) {
                (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a == b,
            });
            if !ok {
                errors.push(format!("{at}: {} is not one of {values:?}", short(v)));
            }
            return;
        }
        let props = self.properties(schema);
        let extra = schema.get("additionalProperties");
        match ty {
            Some("string") if !v.is_string() => {
                errors.push(format!("{at}: expected a string, found {}", short(v)));
            }
            Some("integer") if !(v.is_i64() || v.is_u64()) => {
                errors.push(format!("{at}: expected an integer, found {}", short(v)));
            }
            Some("number") if !v.is_number() => {
                errors.push(format!("{at}: expected a number, found {}", short(v)));
            }
            Some("boolean") if !v.is_boolean() => {
                errors.push(format!("{at}: expected a boolean, found {}", short(v)));
            }
            _ => {}
        }
        // `type: object` with neither properties nor additionalProperties stands for any value
        // in these specifications (field values, default values).
        if props.is_empty() && extra.is_none() {
            return;
        }
        let Some(obj) = v.as_object() else {
            errors.push(format!("{at}: expected an object, found {}", short(v)));
            return;
        };
        for (k, x) in obj {
            match props.get(k.as_str()) {
                Some(s) => self.check(x, s, &format!("{at}.{k}"), errors),
                None => match extra {
                    Some(s) if s.is_object() => self.check(x, s, &format!("{at}.{k}"), errors),
                    _ => errors.push(format!("{at}.{k}: not in the specification")),
                },
            }
        }
    }

    fn check_links(&self, v: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(links) = v.as_object() else {
            errors.push(format!(
                "{at}: expected an object of links, found {}",
                short(v)
            ));
            return;
        };
        for (k, l) in links {
            if !l.get("href").is_some_and(Value::is_string) {
                errors.push(format!("{at}.{k}: a link without href"));
            }
        }
    }

    /// The properties of a definition with those of everything it extends (`allOf`).
    fn properties<'a>(&'a self, schema: &'a Value) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.properties(self.def(r));
        }
        for base in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(self.properties(base));
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            out.extend(p.clone());
        }
        out
    }

    /// Every mismatch of one exchange.
    fn check_exchange(&self, x: &Exchange) -> Vec<String> {
        let name = format!("{} {}", x.method, x.path);
        if x.path.ends_with("/_apis/wit/$batch") {
            // `$batch` is documented on its own page, not in the Work Item Tracking
            // specification; its items are work item PATCH requests, checked as such here.
            return self.check_batch(x);
        }
        let Some((template, op)) = self.operation(&x.method, &x.path) else {
            return vec![format!("{name}: no such operation in the specification")];
        };
        let mut errors = Vec::new();
        let is_json = |ct: &Option<String>| ct.as_deref().is_some_and(|c| c.contains("json"));
        if is_json(&x.request_content_type) && !x.request_body.is_empty() {
            let body: Value = serde_json::from_slice(&x.request_body).unwrap_or(Value::Null);
            match op["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["in"] == "body"))
            {
                Some(p) => self.check(&body, &p["schema"], "request", &mut errors),
                None => errors.push("request: the operation takes no body".to_owned()),
            }
        }
        if (200..300).contains(&x.status)
            && is_json(&x.response_content_type)
            && !x.response_body.is_empty()
        {
            let body: Value = serde_json::from_slice(&x.response_body).unwrap_or(Value::Null);
            let schema = op["responses"]
                .as_object()
                .and_then(|r| r.iter().find(|(c, _)| c.starts_with('2')))
                .map(|(_, r)| r["schema"].clone())
                .unwrap_or(Value::Null);
            let declared_array = schema.get("type").and_then(Value::as_str) == Some("array");
            if declared_array {
                // The documented deviation: arrays come as {count, value}.
                match (body.get("count"), body.get("value")) {
                    (Some(_), Some(value)) => {
                        self.check(value, &schema, "response.value", &mut errors);
                    }
                    _ => errors.push("response: a collection without {count, value}".to_owned()),
                }
            } else if !schema.is_null() {
                self.check(&body, &schema, "response", &mut errors);
            }
        }
        errors
            .into_iter()
            .map(|e| format!("{name} ({template}): {e}"))
            .collect()
    }
}

impl Spec {
    /// Each request of a `$batch` body is checked as the work item request it carries, and each
    /// answer's body as that request's answer.
    fn check_batch(&self, x: &Exchange) -> Vec<String> {
        let mut errors = Vec::new();
        let requests: Value = serde_json::from_slice(&x.request_body).unwrap_or(Value::Null);
        let answers: Value = serde_json::from_slice(&x.response_body).unwrap_or(Value::Null);
        for (i, r) in requests.as_array().into_iter().flatten().enumerate() {
            let method = r["method"].as_str().unwrap_or_default();
            let uri = r["uri"].as_str().unwrap_or_default();
            let path = uri.split('?').next().unwrap_or_default();
            let path = format!(
                "/{}{path}",
                x.path
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or_default()
            );
            let Some((_, op)) = self.operation(method, &path) else {
                errors.push(format!("$batch[{i}] {method} {path}: no such operation"));
                continue;
            };
            if let Some(p) = op["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["in"] == "body"))
            {
                self.check(
                    &r["body"],
                    &p["schema"],
                    &format!("$batch[{i}].body"),
                    &mut errors,
                );
            }
            let answer = &answers["value"][i];
            if answer["code"]
                .as_u64()
                .is_some_and(|c| (200..300).contains(&c))
            {
                let body: Value = answer["body"]
                    .as_str()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null);
                self.check(
                    &body,
                    &op["responses"]["200"]["schema"],
                    &format!("$batch[{i}].answer"),
                    &mut errors,
                );
            }
        }
        errors
            .into_iter()
            .map(|e| format!("{} {}: {e}", x.method, x.path))
            .collect()
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..80])
    } else {
        s
    }
}

/// Drives the adapter and a few raw calls through the simulator, then checks the exchanges.
async fn exchanges(sim_version: SimVersion, server: ServerVersion) -> Vec<Exchange> {
    let sim = crate::sim(sim_version).await;
    sim.control().record_exchanges(true);
    let repo = crate::repo(&sim, server, true);
    let t = ItemType::from("Bug");
    repo.schema(&t).await.unwrap();
    let bug = repo
        .create(
            &t,
            &FieldMap::new().with("System.Title", "checked against the spec"),
            &CreateOptions::default().correlation("INC0010001"),
        )
        .await
        .unwrap();
    repo.update(
        &t,
        &bug.id,
        &FieldMap::new().with("System.Title", "renamed"),
        &UpdateOptions::default().if_version(bug.version.clone()),
    )
    .await
    .unwrap();
    repo.get_many(&t, std::slice::from_ref(&bug.id), &Default::default())
        .await
        .unwrap();
    let renamed = repo
        .revision_after(&t, &bug.id, &bug.version, 1)
        .await
        .unwrap()
        .expect("the rename is the revision after the create");
    assert_eq!(
        renamed.field("System.Title").and_then(|v| v.as_str()),
        Some("renamed")
    );
    repo.changes(&t, &Cursor::beginning(), &ChangeOptions::default())
        .await
        .unwrap();
    repo.find_by_correlation(&t, &"INC0010001".into())
        .await
        .unwrap();
    repo.add_comment(&t, &bug.id, &NewComment::public("spec check"))
        .await
        .unwrap();
    repo.comments(&t, &bug.id).await.unwrap();
    let a = repo
        .upload(&t, &bug.id, &NewAttachment::new("a.txt", "text/plain", "x"))
        .await
        .unwrap();
    repo.download(&a).await.unwrap();
    let writes = [Write::create(
        "Bug",
        FieldMap::new().with("System.Title", "batched"),
    )];
    for r in repo.write_many(&writes).await.unwrap() {
        r.unwrap();
    }
    repo.set_field(
        &t,
        &bug.id,
        "System.State",
        workbridge_core::FieldValue::Choice("Active".into()),
    )
    .await
    .unwrap();
    // Routes the adapter does not use but the vendors' clients do.
    let c = reqwest::Client::new();
    let base = sim.collection_url();
    let p = sim.project();
    let v = server.api();
    for path in [
        format!("_apis/wit/workItems/{}/updates", bug.id),
        format!("_apis/wit/workItems/{}/updates/1", bug.id),
        format!("_apis/wit/workItems/{}/revisions", bug.id),
        format!("_apis/wit/workItems/{}/revisions/1", bug.id),
        format!("{p}/_apis/wit/fields/System.AssignedTo"),
        format!("{p}/_apis/wit/workitemtypes"),
        format!("{p}/_apis/wit/workitemtypes/Bug/states"),
        format!("{p}/_apis/wit/workitemtypes/Bug/fields?$expand=all"),
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let version = if path.contains("/states") && server < ServerVersion::Server2022 {
            format!("{v}-preview")
        } else {
            v.to_owned()
        };
        let r = c
            .get(format!("{base}/{path}{sep}api-version={version}"))
            .basic_auth("", Some("TOKEN"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }
    sim.control().exchanges()
}

fn report(spec: &Spec, xs: &[Exchange]) -> (usize, Vec<String>) {
    let mut errors = BTreeSet::new();
    for x in xs {
        errors.extend(spec.check_exchange(x));
    }
    (xs.len(), errors.into_iter().collect())
}

#[tokio::test]
async fn services_wire_matches_the_7_1_specification() {
    let Some(root) = crate::recorded::recordings() else {
        return;
    };
    let spec = Spec::load(&root.join("7.1/workItemTracking.json"));
    let xs = exchanges(SimVersion::Services, ServerVersion::Services).await;
    let (n, errors) = report(&spec, &xs);
    assert!(n > 20, "only {n} exchanges");
    assert!(
        errors.is_empty(),
        "{} mismatches in {n} exchanges:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[tokio::test]
async fn tfs2018_wire_matches_the_on_premises_4_1_specification() {
    let Some(root) = crate::recorded::recordings() else {
        return;
    };
    let spec = Spec::load(&root.join("tfs-4.1/workItemTracking-onprem.json"));
    let xs = exchanges(SimVersion::Tfs2018, ServerVersion::Tfs2018).await;
    let (n, errors) = report(&spec, &xs);
    assert!(n > 15, "only {n} exchanges");
    assert!(
        errors.is_empty(),
        "{} mismatches in {n} exchanges:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

//! The `workbridge-sim` binary's command line: each system's flags, `--help`, and nothing else.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_workbridge-sim");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_names_every_simulator_and_each_ones_flags() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0, "{out}");
    for system in ["servicenow", "azure-devops", "alm"] {
        assert!(out.contains(system), "{out}");
    }
    let (code, out, _) = run(&["azure-devops", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--server-version") && out.contains("--port"),
        "{out}"
    );
    let (_, out, _) = run(&["alm", "--help"]);
    assert!(
        out.contains("--tz-offset-minutes") && !out.contains("--pat"),
        "{out}"
    );
}

#[test]
fn unknown_or_misplaced_flags_are_refused() {
    // A typo does not start a simulator on the default port.
    let (code, _, err) = run(&["servicenow", "--prot", "1234"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--prot") && err.contains("--port"), "{err}");
    // Another system's flag.
    let (code, _, err) = run(&["servicenow", "--server-version", "tfs2018"]);
    assert_eq!(code, 2, "{err}");
    // A value that is not a number, a stray argument, no system at all.
    assert_eq!(run(&["alm", "--port", "eighty"]).0, 2);
    assert_eq!(run(&["servicenow", "x"]).0, 2);
    assert_eq!(run(&[]).0, 2);
    // A value the simulator does not know.
    let (code, _, err) = run(&["azure-devops", "--server-version", "tfs2010", "--port", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tfs2010"), "{err}");
}

/// A simulator started with `args`, and the first `n` lines it prints.
fn start(args: &[&str], n: usize) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let lines = (0..n)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line
        })
        .collect();
    (child, lines)
}

#[test]
fn a_simulator_starts_with_its_flags_and_prints_its_url() {
    let (mut child, lines) = start(
        &[
            "alm",
            "--port",
            "0",
            "--seed-items",
            "2",
            "--tz-offset-minutes",
            "-300",
        ],
        1,
    );
    let first = &lines[0];
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        first.starts_with("http://127.0.0.1:") && first.trim_end().ends_with("/qcbin"),
        "{first}"
    );
}

/// A simulator in another process is watched and steered through its admin endpoint: its
/// request counts, faults set (a bad setting refused, nothing changed) and failures queued.
#[tokio::test]
async fn the_admin_endpoint_counts_requests_and_takes_faults() {
    let (mut child, lines) = start(
        &[
            "servicenow",
            "--port",
            "0",
            "--seed-items",
            "1",
            "--admin-port",
            "0",
        ],
        2,
    );
    let (url, admin) = (lines[0].trim().to_owned(), &lines[1]);
    let admin = admin
        .trim()
        .strip_prefix("admin: ")
        .unwrap_or_else(|| panic!("{admin}"))
        .to_owned();
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    let c = reqwest::Client::new();
    let table = format!("{url}/api/now/table/incident?sysparm_limit=1");
    let get = || c.get(&table).basic_auth("admin", Some("admin")).send();
    let read = |path: &str| {
        let req = c.get(format!("{admin}{path}"));
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(get().await.unwrap().status(), 200);
    let counts = read("/requests").await;
    assert_eq!(counts["total"], 1, "{counts}");
    assert_eq!(
        counts["routes"]["GET /api/now/table/{table}"], 1,
        "{counts}"
    );
    // A ratio out of range is refused and changes nothing; a good setting takes effect.
    let bad = c
        .put(format!("{admin}/faults"))
        .json(&serde_json::json!({"error_rates": [[503, 1.5]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(get().await.unwrap().status(), 200);
    let set = c
        .put(format!("{admin}/faults"))
        .json(&serde_json::json!({"error_rates": [[503, 1.0]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    assert_eq!(get().await.unwrap().status(), 503);
    let faults = read("/faults").await;
    assert_eq!(faults["error_rates"], serde_json::json!([[503, 1.0]]));
    c.put(format!("{admin}/faults"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    // One failure queued, then the counts start again.
    let queued = c
        .post(format!("{admin}/fail-next"))
        .json(&serde_json::json!({"n": 1, "status": 429, "retry_after_secs": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 204);
    assert_eq!(get().await.unwrap().status(), 429);
    assert_eq!(get().await.unwrap().status(), 200);
    let reset = c.delete(format!("{admin}/requests")).send().await.unwrap();
    assert_eq!(reset.status(), 204);
    let counts = read("/requests").await;
    assert_eq!(counts["total"], 0, "{counts}");
    // Not JSON of the endpoint's shape: refused.
    let junk = c
        .put(format!("{admin}/faults"))
        .json(&serde_json::json!({"latency": "fast"}))
        .send()
        .await
        .unwrap();
    assert!(junk.status().is_client_error(), "{}", junk.status());
    child.kill().unwrap();
    child.wait().unwrap();
}

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

#[test]
fn a_simulator_starts_with_its_flags_and_prints_its_url() {
    let mut child = Command::new(BIN)
        .args([
            "alm",
            "--port",
            "0",
            "--seed-items",
            "2",
            "--tz-offset-minutes",
            "-300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        first.starts_with("http://127.0.0.1:") && first.trim_end().ends_with("/qcbin"),
        "{first}"
    );
}

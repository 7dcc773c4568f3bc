//! The examples are what integrators copy into a crate that depends on `workbridge` alone.

/// Every example reaches the adapters, the HTTP layer and the simulators through the facade
/// (`workbridge::azure_devops`, `workbridge::sim`, ...), never through a sub-crate a user's
/// crate does not depend on; and each names the facade features it needs.
#[test]
fn examples_use_the_facade_only() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("workbridge_"),
                "{}:{}: `{line}` names a sub-crate; use its path under `workbridge::`",
                path.display(),
                n + 1
            );
        }
        let name = path.file_stem().unwrap().to_string_lossy();
        let entry = format!("[[example]]\nname = \"{name}\"\nrequired-features = [");
        let at = manifest
            .find(&entry)
            .unwrap_or_else(|| panic!("{name} has no [[example]] entry with required-features"));
        let features = &manifest[at + entry.len()..];
        let features = &features[..features.find(']').unwrap()];
        if text.contains("workbridge::sim::") {
            assert!(features.contains("\"sim\""), "{name}: {features}");
        }
    }
    assert!(seen >= 3);
}

/// The README's first code is `examples/quickstart.rs`, verbatim: what a newcomer copies
/// compiles and runs (CI runs the example).
#[test]
fn the_readme_shows_the_quickstart_as_it_is() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let code = std::fs::read_to_string(root.join("examples/quickstart.rs")).unwrap();
    let marker = "<!-- examples/quickstart.rs, verbatim";
    let at = readme.find(marker).expect("the README's quickstart marker");
    let block = &readme[at..];
    let start = block
        .find("```rust\n")
        .expect("a rust block after the marker")
        + 8;
    // The block ends at a fence at the start of a line (the example's own doc comments
    // hold fences after `//!`).
    let end = block[start..].find("\n```").expect("the block's end") + start + 1;
    assert_eq!(
        &block[start..end],
        code,
        "README and examples/quickstart.rs differ"
    );
}

/// The root holds the model a sync service works with; what only a connector or a test needs
/// lives in `workbridge::connector` and `workbridge::testing`, each reachable there.
#[test]
fn the_root_holds_the_model_and_the_rest_has_its_module() {
    use workbridge::connector::{same_value, written_in_sequence};
    use workbridge::testing::{FaultRepository, FaultRule, ManualClock, Operation};
    let _ = (same_value, written_in_sequence);
    let memory = workbridge::InMemoryRepository::new("ops");
    let faulty = FaultRepository::new(memory, 1)
        .with_rule(FaultRule::new(workbridge::ErrorKind::Unavailable).on([Operation::Create]));
    assert_eq!(faulty.injected(), 0);
    let _: Option<ManualClock> = None;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let at = lib.find("pub use workbridge_core::{").unwrap();
    let reexports = &lib[at..at + lib[at..].find("};").unwrap()];
    for name in [
        "wrappers",
        "ManualClock",
        "Operation",
        "same_value",
        "KeysetScan",
        "fence",
    ] {
        assert!(
            !reexports.split([',', ' ', '\n', '{']).any(|w| w == name),
            "`{name}` is in the root; it belongs in `connector` or `testing`"
        );
    }
}

//! `scripts/run-all.sh`, the README's main job, on a copy of the repository's top level: the
//! quick suite writes into its scratch directory, with the figures, a refreshed copy of the
//! paper and `provenance.json` naming every experiment, and leaves the committed `results/` and
//! `paper.md` byte for byte as they were (so a fresh clone's `git status` stays clean).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[allow(dead_code)] // each test file uses a part of the shared helpers
mod common;
use common::{EXPERIMENTS, text};

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn the_quick_main_job_leaves_the_committed_results_and_paper_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::copy(
        repo().join("scripts/run-all.sh"),
        root.join("scripts/run-all.sh"),
    )
    .unwrap();
    std::fs::copy(repo().join("paper.md"), root.join("paper.md")).unwrap();
    std::fs::create_dir_all(root.join("results")).unwrap();
    std::fs::write(root.join("results/README.md"), "committed results\n").unwrap();
    let before = tree(root);

    let binaries = Path::new(env!("CARGO_BIN_EXE_testbed")).parent().unwrap();
    let o = Command::new("bash")
        .arg(root.join("scripts/run-all.sh"))
        .args(["--quick", "--scale", "0.01", "--cycles", "2", "--quiet"])
        .env("STKBAR_BINARIES", binaries)
        .output()
        .unwrap();
    assert!(o.status.success(), "run-all: {}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("results in target/run-all-quick/"),
        "it names its scratch directory: {stdout}"
    );
    assert!(stdout.contains("| met |"), "the headline table: {stdout}");

    let after = tree(root);
    for (path, bytes) in &before {
        assert_eq!(
            after.get(path),
            Some(bytes),
            "{} changed or vanished",
            path.display()
        );
    }
    let outside: Vec<&PathBuf> = after
        .keys()
        .filter(|p| !before.contains_key(*p) && !p.starts_with("target/run-all-quick"))
        .collect();
    assert!(
        outside.is_empty(),
        "written outside the scratch directory: {outside:?}"
    );

    let scratch = root.join("target/run-all-quick");
    let paper = std::fs::read_to_string(scratch.join("paper.md")).unwrap();
    assert_ne!(
        paper,
        std::fs::read_to_string(root.join("paper.md")).unwrap(),
        "the scratch copy of the paper holds the quick run's tables"
    );
    assert!(scratch.join("figures").is_dir());
    for table in ["depth_sweep", "goroutine_sweep", "sensitivity"] {
        let start = paper.find(&format!("<!-- generated:{table} -->")).unwrap();
        let end = paper
            .find(&format!("<!-- end generated:{table} -->"))
            .unwrap();
        assert!(
            paper[start..end].contains("p50 µs [95 % CI]"),
            "{table}: pooled medians with intervals"
        );
    }
    for name in [
        "depth_sweep",
        "goroutine_sweep",
        "barrier_designs",
        "scan_stall",
        "sensitivity",
    ] {
        for kind in ["cycles", "pauses"] {
            assert!(
                scratch.join(format!("{name}_{kind}.csv")).is_file(),
                "{name}_{kind}.csv"
            );
        }
    }
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(scratch.join("provenance.json")).unwrap()).unwrap();
    let entries = provenance["experiments"].as_object().unwrap();
    assert_eq!(entries.len(), EXPERIMENTS.len(), "{provenance}");
    for name in EXPERIMENTS {
        let entry = &entries[name];
        let command = entry["command"].as_str().unwrap();
        assert!(
            command.starts_with(&format!("{name} --quick --out target/run-all-quick")),
            "{command}"
        );
        for field in ["rustc", "profile", "os", "started"] {
            assert!(
                entry[field].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: {field} in {entry}"
            );
        }
        assert!(entry["cores"].as_u64().unwrap() >= 1);
        assert!(entry["wall_s"].as_f64().unwrap() >= 0.0);
        // The copy is not a git repository, but the binaries were built from one.
        assert!(
            entry["commit"].as_str().is_none_or(|c| c.len() == 40),
            "{entry}"
        );
    }
}

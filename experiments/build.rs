//! Records the compiler that builds the experiment binaries (`rustc --version`, as the
//! `STKBAR_RUSTC_VERSION` environment variable at compile time) for their `provenance.json`.
//! Cargo rebuilds, and so re-runs this script, whenever the compiler changes.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=STKBAR_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-changed=build.rs");
}

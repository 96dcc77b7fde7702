//! Builds the example jobs (`example-jobs/`) for `wasm32-wasip2`, so that a plain `cargo test`
//! tests real components. The guests have their own workspace and target directory, so this
//! nested cargo never waits on the outer one's lock.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf();
    let jobs = root.join("example-jobs");
    // Sources only: `example-jobs/target` changes on every nested build and would make this
    // script (and everything that depends on it) rerun every time. Only paths that exist: cargo
    // reruns a build script whose watched path is missing on every build (`example-jobs/python`
    // holds Python sources, built by the tests, and has no `src/`), which relinked the e2e
    // server and the test binary on every `cargo test` and `cargo bench`.
    for path in [
        "guest-sdk/src",
        "guest-sdk/Cargo.toml",
        "wit",
        "example-jobs/Cargo.toml",
    ] {
        watch(&root.join(path));
    }
    if let Ok(entries) = std::fs::read_dir(&jobs) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("Cargo.toml").is_file() {
                watch(&path.join("src"));
                watch(&path.join("Cargo.toml"));
            }
        }
    }

    // Automatic toolchain installs are off on our machines: add the target ourselves.
    let _ = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&jobs)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .arg("--target-dir")
        .arg(jobs.join("target"));
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the example jobs");
    assert!(
        status.success(),
        "building example-jobs for wasm32-wasip2 failed"
    );
    let out = jobs.join("target/wasm32-wasip2/release");
    println!("cargo:rustc-env=QUEUEMGR_EXAMPLE_JOBS={}", out.display());
}

/// Reruns this script when `path` changes; a path that does not exist is not watched (cargo
/// would rerun the script on every build).
fn watch(path: &std::path::Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

//! The `faceplate` binary's own surface. (Having an integration test here also makes cargo build the binary
//! whenever the workspace's tests are built, so the end-to-end tests always run the current one.)
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn faceplate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_faceplate")).args(args).env_remove("FACEPLATE_CONFIG").output().unwrap()
}

#[test]
fn help_lists_every_command() {
    let out = faceplate(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "migrate", "config", "openapi", "tenant", "key"] {
        assert!(help.contains(command), "{command} in --help");
    }
    let out = faceplate(&["key", "create", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--tenant") && help.contains("--scope") && help.contains("--expires-in"));
}

#[test]
fn openapi_command_prints_the_document() {
    let out = faceplate(&["openapi"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/v1/keys"].is_object());
}

#[test]
fn usage_errors_exit_non_zero() {
    let out = faceplate(&["tenant", "create"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_faceplate"))
        .arg("openapi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success());
}

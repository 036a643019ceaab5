//! The built binary, run as an engine author would run it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use support::{sample_argument, Backend, CLEAN_SAMPLE, MALICIOUS_SAMPLE};

const BINARY: &str = env!("CARGO_BIN_EXE_{{project-name}}");

/// Runs the binary in `dir` (so no stray engine.toml is picked up) with the
/// backend's settings in the environment.
fn run(dir: &Path, backend: &Backend, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("ENGINE_CONFIG")
        .env_remove("LOG_LEVEL")
        .env_remove("LOG_FORMAT");
    backend.configure(&mut command);
    command.output().expect("binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_eicar_and_check_empty_pass() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &backend,
        &["analyze", "--check-eicar", "--check-empty"],
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).contains("malicious"), "{}", stdout(&output));
}

#[test]
fn analyze_prints_json_per_artifact_and_fails_on_unreadable_ones() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clean = sample_argument(dir.path(), CLEAN_SAMPLE, "clean.txt");
    let malicious = sample_argument(dir.path(), MALICIOUS_SAMPLE, "eicar.com");
    let missing = dir.path().join("missing.bin");
    let missing = missing.to_str().unwrap();

    let output = run(
        dir.path(),
        &backend,
        &["analyze", "--json", &clean, &malicious],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&output));
    assert_eq!(lines[0]["verdict"], "benign");
    assert_eq!(lines[0]["artifact"], clean.as_str());
    assert_eq!(lines[1]["verdict"], "malicious");

    let output = run(
        dir.path(),
        &backend,
        &["analyze", "--json", "--type", "file", missing],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let line: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert!(line["error"].as_str().unwrap().contains("missing.bin"));

    let output = run(dir.path(), &backend, &["analyze", &clean]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("benign"), "{}", stdout(&output));
}

#[test]
fn a_bad_config_value_names_the_key_and_the_file() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[bounties]\nconcurrency = \"many\"\n").unwrap();
    let output = run(
        dir.path(),
        &backend,
        &[
            "--config",
            config.to_str().unwrap(),
            "analyze",
            "--check-eicar",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("bounties.concurrency"), "{message}");
    assert!(message.contains("bad.toml"), "{message}");

    std::fs::write(&config, "[server]\nlisen = \"0.0.0.0:1\"\n").unwrap();
    let output = run(
        dir.path(),
        &backend,
        &[
            "--config",
            config.to_str().unwrap(),
            "analyze",
            "--check-eicar",
        ],
    );
    assert!(stderr(&output).contains("lisen"), "{}", stderr(&output));
}

#[test]
fn bad_environment_values_are_named() {
    let Some(backend) = Backend::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BINARY);
    backend.configure(&mut command);
    let output = command
        .args(["analyze", "--check-eicar"])
        .current_dir(dir.path())
        .env("LOG_LEVEL", "loud")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("loud"), "{}", stderr(&output));

    let output = Command::new(BINARY)
        .args(["analyze", "--check-eicar"])
        .current_dir(dir.path())
        .env("ENGINE_CONCURRENCY", "-3")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("ENGINE_CONCURRENCY"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn serve_refuses_to_start_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("WEBHOOK_SECRET")
        .env_remove("PSENGINE_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("WEBHOOK_SECRET"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_lists_the_commands() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = stdout(&output);
    for command in ["analyze", "serve", "send-bounty"] {
        assert!(help.contains(command), "{help}");
    }
}

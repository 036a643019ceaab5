//! The `{{project-name}}` command: `analyze`, `serve`, `send-bounty`.

use std::process::ExitCode;

use {{crate_name}}::runtime::cli;
use {{crate_name}}::scanner::EngineScanner;

fn main() -> ExitCode {
    cli::main::<EngineScanner>()
}

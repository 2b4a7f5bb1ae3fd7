//! `claude-editor-hook doctor [--json]`: see [`crate::doctor`].

use std::path::Path;

use anyhow::Result;

use crate::doctor::{Report, run_checks};

pub fn run(config: Option<&Path>, as_json: bool) -> Result<i32> {
    let report = Report::new(run_checks(config));
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for finding in &report.checks {
            println!("{}", finding.line());
        }
        println!(
            "{} checks: {} errors, {} warnings",
            report.checks.len(),
            report.errors,
            report.warnings
        );
    }
    Ok(report.exit_code())
}

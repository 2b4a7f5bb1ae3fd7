//! `claude-editor-hook status [--json]`: prints [`crate::team::status`].

use anyhow::Result;

use crate::state::StateDir;

pub fn run(as_json: bool, wide: bool) -> Result<i32> {
    let doc = crate::team::status::snapshot(&StateDir::from_env()?)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", crate::team::status::text(&doc, wide));
    }
    Ok(0)
}

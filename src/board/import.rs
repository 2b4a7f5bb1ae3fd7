//! `add --from tasks.json`: bulk import, in our shape or the seed design's.
//!
//! The file is a JSON array of tasks, or an object with a `tasks` array. A task has
//! `title` or `description` (the seed's name; its first line becomes the title and the
//! whole text the body), and optionally `id`, `body`, `priority`, `dependencies` (or
//! `deps`), `role` and `context`. Ids and dependencies may be strings or numbers. Other
//! fields (the seed's `status`, `assigned_to`, …) are ignored: an imported task is open.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

use super::store::NewTask;
use crate::state::read_optional;

#[derive(Deserialize)]
#[serde(untagged)]
enum File {
    List(Vec<Item>),
    Wrapped { tasks: Vec<Item> },
}

#[derive(Deserialize)]
struct Item {
    id: Option<Value>,
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
    priority: Option<i64>,
    #[serde(alias = "deps")]
    dependencies: Option<Vec<Value>>,
    role: Option<String>,
    context: Option<Value>,
}

fn id_text(v: &Value, what: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => bail!("{what} must be a string or a number, not {other}"),
    }
}

/// Reads the tasks of `path`, in file order. Nothing is added here; the caller adds them
/// all in one transaction, or none.
pub fn read_tasks(path: &Path) -> Result<Vec<NewTask>> {
    let bytes =
        read_optional(path)?.with_context(|| format!("{} does not exist", path.display()))?;
    parse_tasks(&bytes, &path.display().to_string())
}

/// Reads the tasks of a JSON text in either shape; `origin` names it in errors (a file,
/// or the planner's answer).
pub fn parse_tasks(bytes: &[u8], origin: &str) -> Result<Vec<NewTask>> {
    let file: File = serde_json::from_slice(bytes).with_context(|| {
        format!(
            "{origin} is not a task list: expected a JSON array of tasks or {{\"tasks\": [...]}}, \
             each with a title or description"
        )
    })?;
    let items = match file {
        File::List(items) | File::Wrapped { tasks: items } => items,
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = || format!("task {} of {origin}", i + 1);
        let text = item
            .title
            .clone()
            .or(item.description.clone())
            .unwrap_or_default();
        let title = crate::state::title_of(&text);
        if title.is_empty() {
            bail!("{} has no title or description", at());
        }
        let body = match (item.body, item.title.is_some(), item.description) {
            (Some(b), _, _) => b,
            // The seed's description is the whole task: keep it as the body too.
            (None, false, Some(d)) if d.trim() != title => d,
            (None, true, Some(d)) => d,
            _ => String::new(),
        };
        let deps = item
            .dependencies
            .unwrap_or_default()
            .iter()
            .map(|d| id_text(d, "a dependency"))
            .collect::<Result<Vec<_>>>()
            .with_context(at)?;
        out.push(NewTask {
            id: item
                .id
                .as_ref()
                .map(|v| id_text(v, "an id"))
                .transpose()
                .with_context(at)?,
            title,
            body,
            priority: item.priority,
            deps,
            role: item.role,
            context: item.context,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seed_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("tasks.json");
        std::fs::write(
            &p,
            r#"{"tasks": [
                {"id": "setup", "description": "Set up the project", "priority": 1,
                 "dependencies": [], "context": {"files": ["Cargo.toml"]}, "status": "pending"},
                {"id": 2, "description": "Write the parser\nwith tests", "dependencies": ["setup"]}
            ]}"#,
        )
        .unwrap();
        let tasks = read_tasks(&p).unwrap();
        assert_eq!(tasks[0].id.as_deref(), Some("setup"));
        assert_eq!(tasks[0].priority, Some(1));
        assert_eq!(tasks[1].id.as_deref(), Some("2"));
        assert_eq!(tasks[1].title, "Write the parser");
        assert_eq!(tasks[1].body, "Write the parser\nwith tests");
        assert_eq!(tasks[1].deps, ["setup"]);
    }
}

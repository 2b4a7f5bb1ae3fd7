//! The plan: the planner's prompt, reading a plan out of its answer, and validating it
//! (the schema, known dependency ids, no cycles) before anything goes onto a board.
//!
//! A plan has the shape of a `tasks.json` file (docs/run.md): a JSON array of tasks, or
//! `{"tasks": [...]}`, each with `id`, `title` (or the seed design's `description`),
//! and optionally `body`, `priority`, `dependencies` (or `deps`) and `role`. The planner
//! may wrap it in prose or a code fence; the first JSON value that parses as a task list
//! is taken.

use std::collections::{HashMap, HashSet};

use anyhow::{Result, bail};

use crate::board::NewTask;
use crate::board::check::check_id;

/// The most tasks one plan may hold.
pub const MAX_TASKS: usize = 10_000;

/// The planner's prompt: the goal, how many workers there are, and the plan format.
pub fn planner_prompt(goal: &str, workers: usize) -> String {
    format!(
        "You are the planner of an automatic run. {workers} worker(s) will carry out your plan \
in parallel in this project, each a fresh agent that sees only its task, the goal and the \
results of the tasks it depends on.

Goal: {goal}

Look at the project as much as you need, then answer with the plan and nothing else: one JSON \
object of this shape.

{{\"tasks\": [
  {{\"id\": \"t1\", \"title\": \"one line\", \"body\": \"what to do, precisely, and what to report\", \
\"priority\": 1, \"dependencies\": [], \"role\": null}},
  {{\"id\": \"t2\", \"title\": \"...\", \"body\": \"...\", \"priority\": 2, \"dependencies\": [\"t1\"]}}
]}}

Rules: ids are 1-32 of A-Z a-z 0-9 - _ . ; every dependency is the id of another task in the \
plan; no cycles; priority 1 is the highest (default 3); tasks that do not depend on each other \
run at the same time, so only add a dependency where a task needs another's result. \
Answer with the JSON only."
    )
}

/// The second prompt, after an invalid plan.
pub fn retry_prompt(error: &str) -> String {
    format!(
        "That plan is invalid: {error}\nAnswer again with the whole corrected plan, as the \
JSON object only."
    )
}

/// Reads a plan out of a planner's answer (prose and code fences around the JSON are
/// allowed) and validates it.
pub fn parse_answer(answer: &str) -> Result<Vec<NewTask>> {
    let mut first_error = None;
    for (start, _) in answer.match_indices(['{', '[']) {
        let mut stream =
            serde_json::Deserializer::from_str(&answer[start..]).into_iter::<serde_json::Value>();
        let Some(Ok(value)) = stream.next() else {
            continue;
        };
        let is_list = value.is_array() || value.get("tasks").is_some_and(|t| t.is_array());
        if !is_list {
            continue;
        }
        let bytes = serde_json::to_vec(&value).expect("a value serializes");
        match crate::board::import::parse_tasks(&bytes, "the plan").and_then(validate) {
            Ok(tasks) => return Ok(tasks),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        anyhow::anyhow!(
            "the answer holds no JSON task list (expected {{\"tasks\": [...]}}); it begins: {:?}",
            answer.chars().take(120).collect::<String>()
        )
    }))
}

/// Checks a task list as a whole and gives every task an id: the schema rules of the
/// board (ids, titles, priorities, roles, sizes), unique ids, dependencies that name a
/// task of the list, and no cycles. Tasks without an id get `t<position>`.
pub fn validate(mut tasks: Vec<NewTask>) -> Result<Vec<NewTask>> {
    if tasks.is_empty() {
        bail!("the plan has no tasks");
    }
    if tasks.len() > MAX_TASKS {
        bail!(
            "the plan has {} tasks, over the limit of {MAX_TASKS}",
            tasks.len()
        );
    }
    let given: HashSet<String> = tasks.iter().filter_map(|t| t.id.clone()).collect();
    for (i, t) in tasks.iter_mut().enumerate() {
        if t.id.is_none() {
            let id = format!("t{}", i + 1);
            if given.contains(&id) {
                bail!(
                    "task {} has no id, and {id} is taken: give every task an id",
                    i + 1
                );
            }
            t.id = Some(id);
        }
    }
    let mut seen = HashMap::new();
    for (i, t) in tasks.iter().enumerate() {
        let id = t.id.as_deref().expect("every task has an id now");
        crate::board::check::check_new(t)
            .map_err(|e| anyhow::anyhow!("task {id} (number {}): {e:#}", i + 1))?;
        if seen.insert(id.to_owned(), i).is_some() {
            bail!("task id {id} is used twice");
        }
    }
    for t in &tasks {
        let id = t.id.as_deref().expect("id");
        for d in &t.deps {
            check_id(d)?;
            if d == id {
                bail!("task {id} depends on itself");
            }
            if !seen.contains_key(d) {
                bail!("task {id} depends on {d}, which is not a task of the plan");
            }
        }
    }
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone().expect("id")).collect();
    if let Some(cycle) = crate::board::check::find_cycle(&ids, &tasks) {
        bail!("the plan has a dependency cycle: {}", cycle.join(" -> "));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_in_prose_and_a_fence_is_found() {
        let answer = "Here is the plan:\n```json\n{\"tasks\": [{\"id\": \"a\", \"title\": \"A\"}, \
                      {\"id\": \"b\", \"title\": \"B\", \"dependencies\": [\"a\"]}]}\n```\nDone.";
        let tasks = parse_answer(answer).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[1].deps, ["a"]);
    }

    #[test]
    fn invalid_plans_say_why() {
        let err = |a: &str| format!("{:#}", parse_answer(a).unwrap_err());
        assert!(err("no json here").contains("no JSON task list"));
        assert!(err(r#"{"tasks": []}"#).contains("no tasks"));
        assert!(
            err(r#"[{"id":"a","title":"A","deps":["zz"]}]"#).contains("depends on zz"),
            "{}",
            err(r#"[{"id":"a","title":"A","deps":["zz"]}]"#)
        );
        let cyc =
            err(r#"[{"id":"a","title":"A","deps":["b"]},{"id":"b","title":"B","deps":["a"]}]"#);
        assert!(cyc.contains("cycle"), "{cyc}");
        assert!(err(r#"[{"id":"a","title":"A"},{"id":"a","title":"B"}]"#).contains("twice"));
        assert!(err(r#"[{"id":"a b","title":"A"}]"#).contains("invalid task id"));
    }

    #[test]
    fn missing_ids_are_numbered() {
        let tasks = parse_answer(r#"[{"title":"A"},{"title":"B","deps":["t1"]}]"#).unwrap();
        assert_eq!(tasks[0].id.as_deref(), Some("t1"));
        assert_eq!(tasks[1].id.as_deref(), Some("t2"));
    }
}

//! The board's input rules: worker names, task ids, the size of texts, new tasks and
//! their dependencies (no cycles), and the natural order of ids (`t2` before `t10`).

use anyhow::{Result, bail};

use super::MAX_TEXT_BYTES;
use super::task::NewTask;

/// Workers are named like agents: they appear in reports and in hosted agents' names.
pub(crate) fn check_worker(w: &str) -> Result<()> {
    if !crate::state::AgentName::is_valid(w) {
        bail!(
            "invalid worker name {w:?}: use 1-32 characters from a-z, 0-9, '_' and '-', \
             starting with a letter or digit"
        );
    }
    Ok(())
}

/// Task ids: what a human types, and safe in any message or file name.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !ok {
        bail!(
            "invalid task id {id:?}: use 1-32 of A-Z, a-z, 0-9, '-', '_' and '.', starting with a letter or digit"
        );
    }
    Ok(())
}

pub(crate) fn check_new(t: &NewTask) -> Result<()> {
    if let Some(id) = &t.id {
        check_id(id)?;
    }
    if t.title.trim().is_empty() {
        bail!("a task needs a title");
    }
    if t.title.len() > 500 || t.title.contains('\n') {
        bail!("a task title is one line of at most 500 bytes; put the rest in --body");
    }
    check_text("the body", &t.body)?;
    if let Some(p) = t.priority
        && !(1..=1000).contains(&p)
    {
        bail!("priority {p} is out of range: 1 is the highest, 1000 the lowest");
    }
    if let Some(role) = &t.role {
        check_worker(role).map_err(|_| anyhow::anyhow!("invalid role {role:?}"))?;
    }
    for d in &t.deps {
        check_id(d)?;
    }
    if let Some(c) = &t.context
        && c.to_string().len() > MAX_TEXT_BYTES
    {
        bail!("the context is larger than {MAX_TEXT_BYTES} bytes");
    }
    Ok(())
}

/// Refuses text over [`MAX_TEXT_BYTES`].
pub(crate) fn check_text(what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_TEXT_BYTES {
        bail!(
            "{what} is {} bytes, over the board's {MAX_TEXT_BYTES}-byte limit; nothing was \
             recorded (write it to a file and give its path)",
            text.len()
        );
    }
    Ok(())
}

/// Refuses a result over [`MAX_TEXT_BYTES`].
pub fn check_result(result: &str) -> Result<()> {
    check_text("the result", result)
}

/// A dependency cycle among the new tasks, as the ids along it, if there is one.
pub(crate) fn find_cycle(ids: &[String], tasks: &[NewTask]) -> Option<Vec<String>> {
    // 0 unvisited, 1 on the current path, 2 finished.
    let index: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut mark = vec![0u8; ids.len()];
    let mut path = Vec::new();
    fn visit(
        i: usize,
        tasks: &[NewTask],
        index: &std::collections::HashMap<&str, usize>,
        mark: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        mark[i] = 1;
        path.push(i);
        for d in &tasks[i].deps {
            let Some(&j) = index.get(d.as_str()) else {
                continue;
            };
            if mark[j] == 1 {
                let start = path.iter().position(|&p| p == j).expect("on the path");
                let mut cycle = path[start..].to_vec();
                cycle.push(j);
                return Some(cycle);
            }
            if mark[j] == 0
                && let Some(c) = visit(j, tasks, index, mark, path)
            {
                return Some(c);
            }
        }
        path.pop();
        mark[i] = 2;
        None
    }
    for i in 0..ids.len() {
        if mark[i] == 0
            && let Some(c) = visit(i, tasks, &index, &mut mark, &mut path)
        {
            return Some(c.into_iter().map(|i| ids[i].clone()).collect());
        }
    }
    None
}

/// Sorts `t2` before `t10`.
pub(crate) fn natural_key(id: &str) -> (String, u64, String) {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (head, tail) = id.split_at(id.len() - digits);
    (head.to_owned(), tail.parse().unwrap_or(0), id.to_owned())
}

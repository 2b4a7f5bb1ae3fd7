//! What a Ctrl-G prompt asks for.
//!
//! Grammar (issue 2; fan-out, pipelines and roles come later):
//!
//! ```text
//! file      = [ context ] body
//! context   = "# ─── Claude's last response" … LF
//!             *( "#" … LF )
//!             "# ─── Write your reply below this line" … LF [ LF [ LF ] ]
//! body      = *WS "@" NAME 1*WS prompt      ; delegate prompt to agent NAME
//!           | anything else                 ; edit in the user's editor
//! NAME      = [a-z0-9] *31( [a-z0-9_-] )
//! ```
//!
//! `context` is the optional block Claude Code writes when "Show last response in
//! external editor" is on (claude-code-facts 1.24); it is never part of the task.
//! A token after `@` that is not a valid agent name (`@src/main.rs`, `@README.md`) is
//! Claude Code's file-mention syntax, so it is left to the editor rather than refused.

use crate::state::AgentName;

const CONTEXT_START: &str = "# ─── Claude's last response";
const CONTEXT_END: &str = "# ─── Write your reply below this line";

/// What to do with the prompt file.
#[derive(Debug, PartialEq, Eq)]
pub enum Directive<'a> {
    /// No directive: open the user's editor.
    Edit,
    /// Send `prompt` to agent `agent`.
    Delegate { agent: AgentName, prompt: &'a [u8] },
    /// `@NAME` with nothing after it.
    EmptyPrompt { agent: AgentName },
}

/// A parsed prompt file.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub directive: Directive<'a>,
    /// What the user wrote: the file without the context block. Failures keep this
    /// below their one-line reason, so nothing typed is lost.
    pub user_text: &'a [u8],
}

/// Parses the content of the file Claude Code passed to the editor.
pub fn parse(file: &[u8]) -> Parsed<'_> {
    let user_text = strip_context(file);
    Parsed {
        directive: directive(user_text),
        user_text,
    }
}

fn strip_context(file: &[u8]) -> &[u8] {
    if !file.starts_with(CONTEXT_START.as_bytes()) {
        return file;
    }
    let mut rest = file;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let (line, after) = (&rest[..nl], &rest[nl + 1..]);
        if line.starts_with(CONTEXT_END.as_bytes()) {
            // Claude Code separates the marker from the reply with one or two newlines.
            let mut body = after;
            for _ in 0..2 {
                body = body.strip_prefix(b"\n").unwrap_or(body);
            }
            return body;
        }
        rest = after;
    }
    // No end marker: Claude Code then uses the whole file, and so do we.
    file
}

fn directive(body: &[u8]) -> Directive<'_> {
    let body = body.trim_ascii_start();
    let Some(after_at) = body.strip_prefix(b"@") else {
        return Directive::Edit;
    };
    let end = after_at
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(after_at.len());
    let Some(agent) = std::str::from_utf8(&after_at[..end])
        .ok()
        .and_then(|t| AgentName::parse(t).ok())
    else {
        return Directive::Edit;
    };
    let prompt = after_at[end..].trim_ascii_start();
    if prompt.is_empty() {
        return Directive::EmptyPrompt { agent };
    }
    Directive::Delegate { agent, prompt }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegate(file: &str) -> Option<(String, String)> {
        match parse(file.as_bytes()).directive {
            Directive::Delegate { agent, prompt } => Some((
                agent.to_string(),
                String::from_utf8(prompt.to_vec()).unwrap(),
            )),
            _ => None,
        }
    }

    #[test]
    fn at_name_delegates_the_rest_byte_exact() {
        assert_eq!(
            delegate("@planning plan the dark-mode feature"),
            Some(("planning".into(), "plan the dark-mode feature".into()))
        );
        assert_eq!(
            delegate("  @db-2\n/line one\n!two\n#three  \n"),
            Some(("db-2".into(), "/line one\n!two\n#three  \n".into()))
        );
    }

    #[test]
    fn non_names_and_plain_text_go_to_the_editor() {
        for file in [
            "plain text",
            "@src/main.rs explain",
            "@README.md",
            "@ planning x",
            "email a@b",
            "",
        ] {
            assert_eq!(
                parse(file.as_bytes()).directive,
                Directive::Edit,
                "{file:?}"
            );
        }
    }

    #[test]
    fn empty_prompt_is_reported() {
        assert!(matches!(
            parse(b"@planning   \n").directive,
            Directive::EmptyPrompt { .. }
        ));
    }

    #[test]
    fn context_block_is_skipped() {
        let file = "# ─── Claude's last response (for reference; removed on save) ───\n\
                    # line 1\n# @notme line 2\n\
                    # ─── Write your reply below this line ──────────────────────────\n\n\
                    @review check it";
        let parsed = parse(file.as_bytes());
        assert_eq!(parsed.user_text, b"@review check it");
        assert_eq!(delegate(file), Some(("review".into(), "check it".into())));
    }

    #[test]
    fn context_without_end_marker_is_kept_whole() {
        let file = "# ─── Claude's last response\n# x\n@a hi";
        assert_eq!(parse(file.as_bytes()).user_text, file.as_bytes());
        assert_eq!(parse(file.as_bytes()).directive, Directive::Edit);
    }
}

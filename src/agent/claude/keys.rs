//! The bytes between the human, the prompt box and Claude Code: which reads from the
//! terminal are not keys, and how a task's text stays a prompt.

/// Returns true if and only if `bytes` is a terminal's reply or report, not a key: a DCS
/// string (`ESC P … ESC \\`), a device-attributes answer (`ESC [ ? … c`, `ESC [ > … c`)
/// or a focus report (`ESC [ I`, `ESC [ O`).
pub fn is_terminal_reply(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x1bP")
        || (bytes.starts_with(b"\x1b[?") || bytes.starts_with(b"\x1b[>")) && bytes.ends_with(b"c")
        || bytes == b"\x1b[I"
        || bytes == b"\x1b[O"
}

/// Makes `prompt` a prompt, never a slash command.
///
/// Claude Code runs a slash command when the submitted text, with leading whitespace
/// trimmed, starts with `/`; since 2.1.332 a leading space or newline no longer stops
/// that, and invisible characters are stripped (docs/claude-code.md#box-leading-slash).
/// So one `\` goes right before that `/`: a markdown escape the model reads as `/`, and
/// the only byte we ever add. Every other prompt, `!`, `#`, `&`, `?` and `@` included, is
/// delivered untouched (#box-leading-other). See docs/design/slash-led-tasks.md.
pub fn escape_leading_slash(prompt: &str) -> String {
    // JavaScript's trim(): Unicode white space plus the byte-order mark.
    let body = prompt.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if body.starts_with('/') {
        let at = prompt.len() - body.len();
        format!("{}\\{}", &prompt[..at], body)
    } else {
        prompt.to_owned()
    }
}

//! What a Ctrl-G prompt asks for. The full grammar with examples is in
//! `docs/directives.md`; in short:
//!
//! ```text
//! file      = [ context ] body
//! context   = "# ─── Claude's last response" … LF
//!             *( "#" … LF )
//!             "# ─── Write your reply below this line" … LF [ LF [ LF ] ]
//! body      = *WS route 1*WS prompt         ; delegate prompt along route
//!           | anything else                 ; edit in the user's editor
//! route     = target                        ; one agent
//!           | target 1*( 1*WS target )      ; fan-out: all of them, in parallel
//!           | target 1*( *WS ">" *WS target ) ; pipeline: one after the other
//! target    = "@" NAME                      ; an agent, a role, or "any"
//! NAME      = [a-z0-9] *31( [a-z0-9_-] )
//! ```
//!
//! `context` is the optional block Claude Code writes when "Show last response in
//! external editor" is on (docs/claude-code.md#editor-context-block); it is never part of the task.
//! A first token after `@` that is not a valid name (`@src/main.rs`, `@README.md`) is
//! Claude Code's file-mention syntax, so the file is left to the editor; a later one
//! starts the prompt (`@review @src/main.rs look here` asks @review about a file).

use crate::state::AgentName;

const CONTEXT_START: &str = "# ─── Claude's last response";
const CONTEXT_END: &str = "# ─── Write your reply below this line";

/// Where a task goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// One target.
    Single(AgentName),
    /// Every target gets the prompt, in parallel; answers come back in this order.
    FanOut(Vec<AgentName>),
    /// Each target in turn gets the prompt plus the previous answer.
    Pipeline(Vec<AgentName>),
}

impl Route {
    /// The targets, in order.
    pub fn targets(&self) -> &[AgentName] {
        match self {
            Route::Single(t) => std::slice::from_ref(t),
            Route::FanOut(ts) | Route::Pipeline(ts) => ts,
        }
    }
}

/// What to do with the prompt file.
#[derive(Debug, PartialEq, Eq)]
pub enum Directive<'a> {
    /// No directive: open the user's editor.
    Edit,
    /// Send `prompt` along `route`. Targets are names of agents, roles or `any`.
    /// `background` (`@NAME&`): return at once; the answer goes to the chief's outbox.
    Delegate {
        route: Route,
        prompt: &'a [u8],
        background: bool,
    },
    /// `@results`: bring the finished background results.
    Results,
    /// `@board`: the team board's status and newly finished tasks; `@board add TITLE`
    /// adds a task (docs/board.md).
    Board(BoardAsk<'a>),
    /// A route with nothing after it.
    EmptyPrompt { route: Route },
    /// A route that breaks the grammar; the text says how.
    Invalid(String),
}

/// What `@board` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum BoardAsk<'a> {
    /// `@board`: status and the report of the tasks finished since the last `@board`.
    Status,
    /// `@board add TITLE [body lines]`.
    Add(&'a [u8]),
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

/// The name after `@` at the start of `s`, when it is a valid one, whether `&` (run in
/// the background) follows it, and what follows that.
fn target(s: &[u8]) -> Option<(AgentName, bool, &[u8])> {
    let after_at = s.strip_prefix(b"@")?;
    let end = after_at
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'&')
        .unwrap_or(after_at.len());
    let name = std::str::from_utf8(&after_at[..end]).ok()?;
    let name = AgentName::parse(name).ok()?;
    match after_at[end..].strip_prefix(b"&") {
        // `&` ends the target: `@ci&cd` is no target at all.
        Some(rest)
            if rest
                .first()
                .is_none_or(|b| b.is_ascii_whitespace() || *b == b'>') =>
        {
            Some((name, true, rest))
        }
        Some(_) => None,
        None => Some((name, false, &after_at[end..])),
    }
}

fn directive(body: &[u8]) -> Directive<'_> {
    if body.trim_ascii() == b"@results" {
        return Directive::Results;
    }
    if let Some(rest) = body.trim_ascii().strip_prefix(b"@board")
        && rest.first().is_none_or(|b| b.is_ascii_whitespace())
    {
        let rest = rest.trim_ascii();
        if rest.is_empty() {
            return Directive::Board(BoardAsk::Status);
        }
        return match rest.strip_prefix(b"add") {
            Some(title) if title.first().is_some_and(|b| b.is_ascii_whitespace()) => {
                Directive::Board(BoardAsk::Add(title.trim_ascii()))
            }
            _ => {
                Directive::Invalid("@board takes nothing (status and news) or `add <title>`".into())
            }
        };
    }
    let Some((first, mut background, mut rest)) = target(body.trim_ascii_start()) else {
        return Directive::Edit;
    };
    let mut targets = vec![first];
    let (mut fan, mut pipe) = (false, false);
    loop {
        let next = rest.trim_ascii_start();
        if let Some(after) = next.strip_prefix(b">") {
            let Some((t, bg, after_t)) = target(after.trim_ascii_start()) else {
                return Directive::Invalid("a pipeline step needs an @NAME after '>'".into());
            };
            pipe = true;
            background |= bg;
            targets.push(t);
            rest = after_t;
            continue;
        }
        // `@name` after a target and whitespace joins a fan-out; anything else, a file
        // mention included, starts the prompt.
        if let Some((t, bg, after_t)) = target(next) {
            fan = true;
            background |= bg;
            targets.push(t);
            rest = after_t;
            continue;
        }
        rest = next;
        break;
    }
    let route = match (fan, pipe) {
        (false, false) => Route::Single(targets.remove(0)),
        (true, false) => {
            for (i, t) in targets.iter().enumerate() {
                if targets[..i].contains(t) {
                    return Directive::Invalid(format!("@{t} is listed twice in the fan-out"));
                }
            }
            Route::FanOut(targets)
        }
        (false, true) => Route::Pipeline(targets),
        (true, true) => {
            return Directive::Invalid(
                "a route is either a fan-out (@a @b) or a pipeline (@a > @b), not both".into(),
            );
        }
    };
    if background && !matches!(route, Route::Single(_)) {
        return Directive::Invalid("background (&) takes one target: @NAME& prompt".into());
    }
    if rest.is_empty() {
        return Directive::EmptyPrompt { route };
    }
    Directive::Delegate {
        route,
        prompt: rest,
        background,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegate(file: &str) -> Option<(String, String)> {
        match parse(file.as_bytes()).directive {
            Directive::Delegate {
                route: Route::Single(agent),
                prompt,
                background: false,
            } => Some((
                agent.to_string(),
                String::from_utf8(prompt.to_vec()).unwrap(),
            )),
            _ => None,
        }
    }

    fn route(file: &str) -> Directive<'_> {
        parse(file.as_bytes()).directive
    }

    fn names(v: &[&str]) -> Vec<AgentName> {
        v.iter().map(|n| AgentName::parse(n).unwrap()).collect()
    }

    #[test]
    fn fan_out_and_pipelines() {
        assert_eq!(
            route("@planning @review check the plan"),
            Directive::Delegate {
                route: Route::FanOut(names(&["planning", "review"])),
                prompt: b"check the plan",
                background: false,
            }
        );
        assert_eq!(
            route("@planning > @coding>@testing build it"),
            Directive::Delegate {
                route: Route::Pipeline(names(&["planning", "coding", "testing"])),
                prompt: b"build it",
                background: false,
            }
        );
        // A file mention after the route starts the prompt.
        assert_eq!(
            route("@review @src/main.rs look"),
            Directive::Delegate {
                route: Route::Single(AgentName::parse("review").unwrap()),
                prompt: b"@src/main.rs look",
                background: false,
            }
        );
    }

    #[test]
    fn bad_routes_are_explained() {
        for (file, why) in [
            ("@a > @b @c go", "not both"),
            ("@a @b > @c go", "not both"),
            ("@a > go", "needs an @NAME"),
            ("@a >", "needs an @NAME"),
            ("@a @a go", "listed twice"),
            ("@a& @b go", "takes one target"),
            ("@a > @b& go", "takes one target"),
        ] {
            match route(file) {
                Directive::Invalid(msg) => assert!(msg.contains(why), "{file}: {msg}"),
                other => panic!("{file}: {other:?}"),
            }
        }
        assert!(matches!(route("@a @b  "), Directive::EmptyPrompt { .. }));
    }

    #[test]
    fn background_and_results() {
        assert_eq!(
            route("@monitor& watch the build"),
            Directive::Delegate {
                route: Route::Single(AgentName::parse("monitor").unwrap()),
                prompt: b"watch the build",
                background: true,
            }
        );
        assert_eq!(route("  @results \n"), Directive::Results);
        assert_eq!(route("@board\n"), Directive::Board(BoardAsk::Status));
        assert_eq!(
            route("@board add write the docs\nwith examples"),
            Directive::Board(BoardAsk::Add(b"write the docs\nwith examples"))
        );
        assert!(matches!(route("@board please"), Directive::Invalid(_)));
        assert!(matches!(route("@boardroom hi"), Directive::Delegate { .. }));
        assert_eq!(route("@ci&cd broke"), Directive::Edit);
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

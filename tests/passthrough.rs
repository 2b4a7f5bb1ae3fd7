//! Prompts without a directive go to the user's real editor, never back to the hook.

use std::fs;

use crate::fixture::*;
use crate::helper::wait::output_with_timeout;

#[test]
fn a_plain_prompt_opens_the_real_editor_with_its_exit_status() {
    let env = Env::new();
    let editor = write_script(
        env.dir.path(),
        "myeditor",
        r#"printf ' EDITED' >> "$1"; exit "${EXIT:-0}""#,
    );
    let file = env.prompt_file(b"plain text");
    let out = env
        .cmd(HOOK)
        .env("EDITOR", &editor)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read(&file).unwrap(), b"plain text EDITED");

    // File mentions are Claude Code syntax, not agents.
    let file = env.prompt_file(b"@src/main.rs explain");
    let out = env
        .cmd(HOOK)
        .env("VISUAL", &editor)
        .env("EXIT", "3")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(fs::read(&file).unwrap(), b"@src/main.rs explain EDITED");
}

#[test]
fn editor_variables_pointing_at_the_hook_never_loop() {
    let env = Env::new();
    let bin = env.dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    write_script(&bin, "vi", r#"printf ' VI-RAN' >> "$1""#);
    // A wrapper that calls $EDITOR again, as many editor shims do.
    let shim = write_script(&bin, "shim", &format!(r#"exec "{HOOK}" "$1""#));
    let path = format!("{}:/usr/bin:/bin", bin.display());
    for (var, value) in [
        ("EDITOR", HOOK.to_owned()),
        ("VISUAL", "claude-editor-hook".to_owned()),
        ("EDITOR", shim.display().to_string()),
    ] {
        let file = env.prompt_file(b"text");
        let mut cmd = env.cmd(HOOK);
        cmd.env(var, &value).env("PATH", &path).arg(&file);
        let out = output_with_timeout(&mut cmd, SECS);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{var}={value}: {}",
            text(&out.stderr)
        );
        assert_eq!(fs::read(&file).unwrap(), b"text VI-RAN", "{var}={value}");
    }
    // No editor at all: a clear error and a non-zero exit, so Claude keeps the prompt.
    let file = env.prompt_file(b"text");
    let mut cmd = env.cmd(HOOK);
    cmd.env("PATH", "/nonexistent").arg(&file);
    let out = output_with_timeout(&mut cmd, SECS);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("failed to run editor `vi`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_option_or_setting_is_reported_on_top_of_the_prompt() {
    let env = Env::new();
    let file = env.prompt_file(b"@planning keep me");
    let out = env
        .cmd(HOOK)
        .env("CLAUDE_EDITOR_HOOK_TIMEOUT", "soon")
        .arg(&file)
        .output()
        .unwrap();
    // Exit 0: a non-zero exit would make Claude Code drop the reason unseen.
    assert_eq!(out.status.code(), Some(0));
    let after = text(&fs::read(&file).unwrap());
    assert!(
        after.starts_with("[claude-editor-hook] invalid value 'soon' for '--timeout"),
        "{after}"
    );
    assert!(after.ends_with("\n@planning keep me"), "{after}");
    // Boolean settings take the usual spellings.
    for value in ["1", "yes", "0", "false"] {
        let out = env
            .cmd(HOOK)
            .env("CLAUDE_EDITOR_HOOK_SUBMIT", value)
            .arg("status")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "CLAUDE_EDITOR_HOOK_SUBMIT={value}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn an_editor_setting_with_arguments_or_shell_syntax_runs_as_git_runs_it() {
    let env = Env::new();
    let editor = write_script(
        env.dir.path(),
        "argeditor",
        r#"printf ' ARGS:%s' "$*" >> "$2""#,
    );
    // `code --wait` style: the program, its options, then the file.
    let file = env.prompt_file(b"text");
    let mut cmd = env.cmd(HOOK);
    cmd.env("EDITOR", format!("{} --wait", editor.display()))
        .arg(&file);
    let out = output_with_timeout(&mut cmd, SECS);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = format!("text ARGS:--wait {}", file.display());
    assert_eq!(text(&fs::read(&file).unwrap()), expected);

    // Shell syntax: `sh -c '…' sh`, the file as its $1.
    let file = env.prompt_file(b"text");
    let mut cmd = env.cmd(HOOK);
    cmd.env(
        "CLAUDE_EDITOR_HOOK_EDITOR",
        r#"sh -c 'printf " SHELL" >> "$1"' sh"#,
    )
    .arg(&file);
    let out = output_with_timeout(&mut cmd, SECS);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(fs::read(&file).unwrap(), b"text SHELL");
}

#[test]
fn a_known_name_in_another_case_gets_a_hint_instead_of_the_editor() {
    let env = Env::new();
    let _agent = env.agent("planning", &["--exec", "cat", "--role", "review"]);
    let editor = write_script(env.dir.path(), "ed", r#"printf ' EDITED' >> "$1""#);
    for (prompt, lower) in [
        (&b"@Planning hi"[..], "@planning"),
        (b"@REVIEW check", "@review"),
    ] {
        let file = env.prompt_file(prompt);
        let mut cmd = env.cmd(HOOK);
        cmd.env("EDITOR", &editor).arg(&file);
        let out = output_with_timeout(&mut cmd, SECS);
        assert_eq!(out.status.code(), Some(0));
        let (head, body) = head_and_body(&fs::read(&file).unwrap());
        assert!(head.contains(&format!("write {lower}")), "{head}");
        assert_eq!(body, prompt, "the prompt is kept");
    }
    // A capitalised word that names nobody is an ordinary prompt: the editor opens.
    let file = env.prompt_file(b"@Override explain");
    let mut cmd = env.cmd(HOOK);
    cmd.env("EDITOR", &editor).arg(&file);
    let out = output_with_timeout(&mut cmd, SECS);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(fs::read(&file).unwrap(), b"@Override explain EDITED");
}

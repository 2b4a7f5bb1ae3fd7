//! `claude-editor-hook`: see `ceh::cli::EditorHookCli`.

fn main() -> std::process::ExitCode {
    ceh::cli::editor_hook_main()
}

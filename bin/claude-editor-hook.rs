//! `claude-editor-hook`: see `ceh::cli::HookCli`.

fn main() -> std::process::ExitCode {
    ceh::cli::hook_main()
}

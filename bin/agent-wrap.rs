//! `agent-wrap`: see `ceh::cli::WrapCli`.

fn main() -> std::process::ExitCode {
    ceh::cli::wrap_main()
}

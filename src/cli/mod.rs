//! Command-line entry points. The binaries in `bin/` call [`editor_hook_main`] and
//! [`wrap_main`]; this is the one place that prints an error and picks the exit code.

use std::sync::atomic::{AtomicBool, Ordering};

mod board;
pub(crate) mod chief;
mod claude_editor_hook;
mod compact;
mod demo;
mod doctor;
mod events;
mod prune;
mod run;
mod status;
mod verbs;
mod worktree;
mod wrap;

pub use claude_editor_hook::{EditorHookCli, editor_hook_main};
pub use wrap::{WrapCli, wrap_main};

/// Runs `f`, printing an error as `<prog>: <reason>` and exiting 1.
fn exit_with(prog: &str, result: anyhow::Result<i32>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("{prog}: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Whether descriptor 1 was closed when the process started (`send … >&-`). Rust's
/// runtime puts `/dev/null` on a closed standard descriptor before `main`, after which
/// every write to stdout "succeeds": only a look before that tells the two apart.
static STDOUT_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

/// Runs before Rust's runtime starts (the C runtime calls `.init_array` entries before
/// `main`), to see descriptor 1 as the shell left it.
extern "C" fn record_stdout_at_start() {
    use std::os::fd::BorrowedFd;
    // SAFETY: descriptor 1 is only borrowed for one fcntl(F_GETFD), which reads flags
    // and neither closes nor changes it; an invalid descriptor makes it fail with EBADF.
    let stdout = unsafe { BorrowedFd::borrow_raw(1) };
    let closed = nix::fcntl::fcntl(stdout, nix::fcntl::FcntlArg::F_GETFD).is_err();
    STDOUT_CLOSED_AT_START.store(closed, Ordering::Relaxed);
}

#[used]
// SAFETY: an `.init_array` entry is a function pointer the C runtime calls once, with
// no arguments, before `main`; `record_stdout_at_start` has that signature and touches
// only an atomic.
#[unsafe(link_section = ".init_array")]
static RECORD_STDOUT_AT_START: extern "C" fn() = record_stdout_at_start;

/// Writes `bytes` to stdout, byte for byte, failing when they cannot be written: a
/// closed stdout (see [`STDOUT_CLOSED_AT_START`]) or a failing write (a full disk, a
/// closed pipe). Not through `std::io::stdout()`, which reports success on EBADF.
pub(crate) fn write_stdout(mut bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    // Referenced here so that the linker keeps the start-up check with this function.
    let _ = std::hint::black_box(&RECORD_STDOUT_AT_START);
    if STDOUT_CLOSED_AT_START.load(Ordering::Relaxed) {
        anyhow::bail!("stdout is closed: there is nowhere to print the answer");
    }
    let stdout = std::io::stdout();
    let fd = stdout.as_fd();
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(anyhow::Error::new(std::io::Error::from(e))
                    .context("failed to write to stdout"));
            }
        }
    }
    Ok(())
}

//! Helpers shared by the CLI test files: run the real binary, describe a run for assertion messages.

use std::process::{Command, Output};

/// Runs `bitseek` with `args`.
pub fn bitseek<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitseek"))
        .args(args)
        .output()
        .expect("cannot run the bitseek binary")
}

/// The command line, exit code, stdout and stderr of a run.
pub fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "bitseek {}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

//! `herd-inspect`: dump, verify and summarize a herd transaction log, or check and
//! summarize a snapshot. See `herd-inspect --help` and `herd_tools::inspect`.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code =
        herd_tools::inspect::run(&args, &mut std::io::stdout().lock(), &mut std::io::stderr());
    ExitCode::from(code)
}

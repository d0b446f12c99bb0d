//! `herd-cli`: a zkCli-compatible shell. See `herd-cli --help` and
//! `herd_tools::shell`.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = herd_tools::shell::output(std::io::stdout());
    let err = herd_tools::shell::output(std::io::stderr());
    ExitCode::from(herd_tools::shell::run(&args, None, out, err))
}

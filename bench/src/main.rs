//! `herd-bench WORKLOAD [options]`: see `herd_bench::USAGE`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", herd_bench::USAGE);
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let options = match herd_bench::Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("herd-bench: {e}\n\n{}", herd_bench::USAGE);
            return ExitCode::from(2);
        }
    };
    match herd_bench::run(&options) {
        Ok(summary) => {
            print!("{}", summary.table());
            if summary.unexpected_errors() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("herd-bench: {e}");
            ExitCode::from(1)
        }
    }
}

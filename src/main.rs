use std::process::ExitCode;

fn main() -> ExitCode {
    mathlake::cli::main()
}

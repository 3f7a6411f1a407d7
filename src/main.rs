//! The `qdet` binary: everything is in the library's command-line module.

fn main() -> std::process::ExitCode {
    qdet::cli::main()
}

fn main() -> std::process::ExitCode {
    tutor::cli::main()
}

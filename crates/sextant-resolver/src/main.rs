fn main() -> std::process::ExitCode {
    sextant_daemon::main::<sextant_resolver::ResolverDaemon>()
}

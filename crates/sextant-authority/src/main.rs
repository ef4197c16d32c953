//! The sextant-authority daemon's entry point: everything is in the sextant_authority library.
// Small, short-lived allocations per query (buffers, answers, gRPC messages): a
// thread-caching allocator spends much less on them than glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sextant_daemon::main::<sextant_authority::AuthorityDaemon>()
}

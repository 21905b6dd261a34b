//! The `keygate` command.

#![forbid(unsafe_code)]

/// mimalloc rather than the system allocator: a request allocates a few hundred small blocks
/// (headers, JSON, boxed futures), and glibc's malloc and free were about a seventh of the
/// instructions of a proxied chat request (callgrind). Built with `no_thp`: asking for
/// transparent huge pages doubled the idle RSS (16 to 31 MiB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keygate::Gateway::builder().run()
}

//! The `keygate` command.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    keygate::Gateway::builder().run()
}

//! keygate with the echo plugin linked in: `echo` registers itself (inventory), `echo-reverse`
//! is added with the builder.

use keygate_plugin_echo as echo;

fn main() -> std::process::ExitCode {
    keygate::Gateway::builder()
        .plugin(echo::reverse_definition())
        .run()
}

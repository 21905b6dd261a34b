//! An exec helper (`type: exec`): a command printing `{"api_key": "...", "expires_at": RFC3339?}`
//! on stdout, like AWS `credential_process`. See [`output`] for the full protocol.
//!
//! The helper runs as `command[0] command[1..] NAME` (no shell), with stdin closed and
//! `KEYGATE_SECRET_FIELD` set when the reference names a field. It inherits keygate's process
//! environment. Stdout is read up to 64 KiB; stderr is read and thrown away (only its length is
//! logged, at debug) because helpers may print secrets there. Past the timeout (10s by default)
//! the helper is killed. Error messages name the helper by its file name and give exit statuses
//! or fixed words; they never quote what it printed. Processes the helper itself starts are not
//! killed with it.

mod output;
mod rfc3339;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use keygate_plugin_api::{BoxFuture, Lookup, SecretQuery, SecretSource, SourceError};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tracing::debug;

use self::output::OutputProblem;
use super::SourceContext;
use crate::config::ExecSourceConfig;

/// How long a helper may run when the config does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most stdout read from a helper.
const STDOUT_LIMIT: usize = 64 * 1024;
/// Set for the helper when the reference names a field (`exec:NAME#FIELD`).
const FIELD_VAR: &str = "KEYGATE_SECRET_FIELD";

/// Why a helper gave no answer. The text follows "exec helper `NAME` ".
#[derive(Debug, thiserror::Error)]
enum ExecError {
    /// The program could not be started (missing, not executable).
    #[error("exec helper `{name}` could not start: {kind}")]
    Spawn {
        name: String,
        kind: std::io::ErrorKind,
    },
    /// It ran past the timeout and was killed.
    #[error("exec helper `{name}` timed out after {after:?}")]
    TimedOut { name: String, after: Duration },
    /// It exited with a non-zero status.
    #[error("exec helper `{name}` exited with status {code}")]
    Exited { name: String, code: i32 },
    /// It was ended by a signal.
    #[error("exec helper `{name}` was terminated by a signal")]
    Signalled { name: String },
    /// It printed more than [`STDOUT_LIMIT`] bytes.
    #[error("exec helper `{name}` printed more than 64 KiB")]
    TooMuchOutput { name: String },
    /// Reading its output or waiting for it failed.
    #[error("exec helper `{name}`: reading its output failed: {kind}")]
    Io {
        name: String,
        kind: std::io::ErrorKind,
    },
    /// Its stdout is not an answer.
    #[error("exec helper `{name}` {problem}")]
    Output {
        name: String,
        problem: OutputProblem,
    },
}

/// The `exec` secret source.
pub struct ExecSource {
    program: String,
    args: Vec<String>,
    /// `command[0]`'s file name, for messages.
    name: String,
    timeout: Duration,
    ttl: Option<Duration>,
}

impl ExecSource {
    /// Builds the source from its config: checks the command and timeout. No I/O.
    pub fn new(config: &ExecSourceConfig, _ctx: &SourceContext<'_>) -> Result<Self, String> {
        let Some((program, args)) = config.command.split_first() else {
            return Err("command must name a program".to_owned());
        };
        if program.is_empty() {
            return Err("command[0] must not be empty".to_owned());
        }
        let timeout = config.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err("timeout must be more than 0".to_owned());
        }
        let name = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.clone());
        Ok(Self {
            program: program.clone(),
            args: args.to_vec(),
            name,
            timeout,
            ttl: config.ttl,
        })
    }

    async fn run(&self, query: SecretQuery<'_>) -> Result<Lookup, ExecError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .arg(query.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match query.field {
            Some(field) => command.env(FIELD_VAR, field),
            None => command.env_remove(FIELD_VAR),
        };
        let mut child = command.spawn().map_err(|err| ExecError::Spawn {
            name: self.name.clone(),
            kind: err.kind(),
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = tokio::time::timeout(self.timeout, async {
            tokio::try_join!(self.read_stdout(stdout), self.drain(stderr), async {
                child.wait().await.map_err(|err| self.io(&err))
            },)
        })
        .await;
        let (stdout, stderr_len, status) = match finished {
            Ok(Ok(done)) => done,
            Ok(Err(err)) => {
                let _ = child.kill().await;
                return Err(err);
            }
            Err(_elapsed) => {
                let _ = child.kill().await;
                return Err(ExecError::TimedOut {
                    name: self.name.clone(),
                    after: self.timeout,
                });
            }
        };
        debug!(
            source = "exec",
            helper = %self.name,
            status = ?status.code(),
            stdout_bytes = stdout.len(),
            stderr_bytes = stderr_len,
            "helper finished"
        );
        if !status.success() {
            return Err(match status.code() {
                Some(code) => ExecError::Exited {
                    name: self.name.clone(),
                    code,
                },
                None => ExecError::Signalled {
                    name: self.name.clone(),
                },
            });
        }
        output::parse(&stdout).map_err(|problem| ExecError::Output {
            name: self.name.clone(),
            problem,
        })
    }

    /// Stdout, up to [`STDOUT_LIMIT`].
    async fn read_stdout(
        &self,
        stdout: Option<impl AsyncRead + Unpin>,
    ) -> Result<Vec<u8>, ExecError> {
        let mut buf = Vec::new();
        if let Some(stdout) = stdout {
            stdout
                .take(STDOUT_LIMIT as u64 + 1)
                .read_to_end(&mut buf)
                .await
                .map_err(|err| self.io(&err))?;
        }
        if buf.len() > STDOUT_LIMIT {
            return Err(ExecError::TooMuchOutput {
                name: self.name.clone(),
            });
        }
        Ok(buf)
    }

    /// Reads stderr to its end, keeping nothing; returns its length.
    async fn drain(&self, stderr: Option<impl AsyncRead + Unpin>) -> Result<u64, ExecError> {
        match stderr {
            Some(mut stderr) => tokio::io::copy(&mut stderr, &mut tokio::io::sink())
                .await
                .map_err(|err| self.io(&err)),
            None => Ok(0),
        }
    }

    fn io(&self, err: &std::io::Error) -> ExecError {
        ExecError::Io {
            name: self.name.clone(),
            kind: err.kind(),
        }
    }
}

impl std::fmt::Debug for ExecSource {
    /// The program only: arguments may carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ExecSource").field(&self.program).finish()
    }
}

impl SecretSource for ExecSource {
    fn kind(&self) -> &str {
        "exec"
    }

    /// `exec PROGRAM`; the arguments are left out, as they may carry credentials.
    fn describe(&self) -> String {
        format!("exec {}", self.program)
    }

    fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn fetch<'a>(&'a self, query: SecretQuery<'a>) -> BoxFuture<'a, Result<Lookup, SourceError>> {
        Box::pin(async move {
            self.run(query)
                .await
                .map_err(|err| SourceError::new(err.to_string()))
        })
    }
}

#[cfg(test)]
mod tests;

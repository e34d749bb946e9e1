//! `tutor shell NAME [TARGET]`: a shell in an environment `tutor run --keep` left, starting with
//! the tutorial's variables, functions, captured values and working directory of that target
//! (docs/architecture.md, "Resume"). `tutor lab exec` starts its shells the same way.

use std::path::PathBuf;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::Exit;
use crate::backend::{Target, attach};
use crate::runner::kept::{self, ShellRun};

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// The kept environment (`tutor run --keep` ends by naming it).
    name: String,
    /// Where: `host`, or on the lab a node, `pod/NAME` or `ns/NS/pod/NAME`.
    #[arg(default_value = "host")]
    target: String,
    /// Run this instead of an interactive shell: one argument is a command line, several are a
    /// command (maybe one of the tutorial's functions) and its arguments. Without it and with
    /// stdin not a terminal, the script on stdin runs.
    #[arg(last = true)]
    command: Vec<String>,
    /// The run record beside which kept environments are listed (`envs/`), as for `tutor run`.
    #[arg(long, value_name = "PATH", env = "TUTOR_RECORD", default_value = "target/tutor/last-run.json")]
    record: PathBuf,
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<Exit> {
    eprintln!("{} {message}", console::style("error:").red().bold());
    Ok(Exit::Usage)
}

pub async fn execute(args: ShellArgs) -> anyhow::Result<Exit> {
    let envs = kept::dir(&args.record);
    let k = match kept::read(&envs, &args.name) {
        Ok(k) => k,
        Err(e) => return usage(e),
    };
    if let Err(why) = attach::still_there(k.backend, &k.name, &k.workdir) {
        kept::remove(&envs, &k.name);
        return usage(format!("the kept {} environment `{}` is gone: {why}", k.backend, k.name));
    }
    let target: Target = match args.target.parse() {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let run = ShellRun::of(args.command);
    let shell = kept::shell(Some(&k), &target, &run)?;
    let cmd = match attach::shell_command(k.backend, &k.name, &k.workdir, &target, &shell.argv) {
        Ok(c) => c,
        Err(e) if e.is_usage() => return usage(e),
        Err(e) => anyhow::bail!(e),
    };
    announce(&k.name, &target, &run, shell.restored);
    foreground(cmd, &shell.env).await
}

/// One line on stderr before an interactive shell (or when the target has no state to start
/// from), so the user knows where they are.
pub(super) fn announce(name: &str, target: &Target, run: &ShellRun, restored: bool) {
    if !restored {
        eprintln!(
            "note: no block of the kept run `{name}` ran on {target}: its shell starts without the tutorial's state"
        );
    } else if *run == ShellRun::Interactive {
        eprintln!("{target} of `{name}`, with the tutorial's state; `exit` leaves");
    }
}

/// Run `cmd` in the foreground and end tutor with its status, as `docker exec` passes it
/// through (a signal's death as 128 + the signal). Ctrl-C and Ctrl-\ are the shell's: tutor
/// catches them meanwhile (a handler, not an ignored signal, so the shell gets the default).
pub(super) async fn foreground(cmd: std::process::Command, env: &[(String, String)]) -> anyhow::Result<Exit> {
    use std::os::unix::process::ExitStatusExt;
    let _int = signal(SignalKind::interrupt())?;
    let _quit = signal(SignalKind::quit())?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let status = cmd.status().await.with_context(|| format!("running {program}"))?;
    std::process::exit(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9)))
}

//! The command line: the only place that prints to the user and chooses exit codes.

mod book;
mod check;
mod lab;
mod lb;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes (README): 0 all passed, 1 a block failed or mismatched, 2 usage or input error,
/// 130 interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Pass = 0,
    Fail = 1,
    Usage = 2,
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, Parser)]
#[command(name = "tutor", version, about = "Run Markdown tutorials as tested scenarios")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run tutorials on a fresh environment and compare outputs with their expectations.
    Run(run::RunArgs),
    /// Parse and lint tutorials without executing anything.
    Check(check::CheckArgs),
    /// Keep a lab up to explore by hand.
    Lab(lab::LabArgs),
    /// The bundled XDP L4 load balancer on a real interface.
    Lb(lb::LbArgs),
    /// Render the tutorials into an mdBook.
    Book(book::BookArgs),
}

pub fn main() -> ExitCode {
    // The lab installs `kubectl`, `kind`, `helm`, … as links to this binary.
    if let Some(code) = lab::shim_dispatch() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage.into() } else { Exit::Pass.into() };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Usage.into();
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::execute(args).await,
            Command::Check(args) => check::execute(args).await,
            Command::Lab(args) => lab::execute(args).await,
            Command::Lb(args) => lb::execute(args).await,
            Command::Book(args) => book::execute(args).await,
        }
    });
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("{} {err:#}", console::style("error:").red().bold());
            Exit::Usage.into()
        }
    }
}

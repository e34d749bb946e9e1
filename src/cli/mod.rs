//! The command line: the only place that prints to the user and chooses exit codes.

mod book;
mod check;
mod init;
mod lab;
mod lb;
mod review;
mod run;
mod shell;

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
    /// Colours in tutor's own output: `auto` (a terminal, and `NO_COLOR` unset), `always`, `never`.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// A reader that closed tutor's stdout (`tutor run … | head -1`) ends tutor quietly, as a
/// program killed by SIGPIPE would end (exit 141), never with a panic: the running blocks'
/// process groups are stopped first. SIGPIPE itself stays ignored, so a pipe to a block's shell
/// that closes is an error the runner handles, not the end of tutor.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") {
            crate::backend::process::kill_all();
            std::process::exit(141);
        }
        default(info);
    }));
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run tutorials on a fresh environment and compare outputs with their expectations.
    Run(run::RunArgs),
    /// Parse and lint tutorials without executing anything.
    Check(check::CheckArgs),
    /// Accept or reject the pending changes that mismatching runs recorded.
    Review(review::ReviewArgs),
    /// A shell in an environment `tutor run --keep` left, with the tutorial's state.
    Shell(shell::ShellArgs),
    /// Keep a lab up to explore by hand.
    Lab(lab::LabArgs),
    /// The bundled XDP L4 load balancer on a real interface.
    Lb(lb::LbArgs),
    /// Render the tutorials into an mdBook.
    Book(book::BookArgs),
    /// Start a tutorial project: book.toml, tutorials/ with an example, a CI workflow.
    Init(init::InitArgs),
}

pub fn main() -> ExitCode {
    // The lab installs `kubectl`, `kind`, `helm`, … as links to this binary.
    if let Some(code) = lab::shim_dispatch() {
        return code;
    }
    // Image programs the lab plays (`cilium-agent`, `cilium-dbg`, …) are links to this binary.
    if let Some(code) = crate::backend::lab::programs::dispatch() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage.into() } else { Exit::Pass.into() };
        }
    };
    quiet_on_closed_stdout();
    match cli.color {
        Color::Auto => {}
        Color::Always | Color::Never => {
            let on = cli.color == Color::Always;
            console::set_colors_enabled(on);
            console::set_colors_enabled_stderr(on);
        }
    }
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
            Command::Review(args) => review::execute(args).await,
            Command::Shell(args) => shell::execute(args).await,
            Command::Lab(args) => lab::execute(args).await,
            Command::Lb(args) => lb::execute(args).await,
            Command::Book(args) => book::execute(args).await,
            Command::Init(args) => init::execute(args).await,
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

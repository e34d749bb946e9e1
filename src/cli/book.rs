//! `tutor book`: build the tutorials' mdBook with the last run's verdicts, and
//! `tutor book preprocess`, the mdBook preprocessor that `book.toml` names.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::Exit;
use crate::book;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BookArgs {
    #[command(subcommand)]
    command: Option<BookCommand>,
    /// Open the book in a web browser once it is built.
    #[arg(long)]
    open: bool,
    /// Serve the book over HTTP and rebuild it when a chapter, a snapshot or the run record
    /// changes (`mdbook serve`); Ctrl-C stops it.
    #[arg(long)]
    serve: bool,
    /// Port to serve on (with --serve).
    #[arg(long, value_name = "PORT", default_value_t = 3000, requires = "serve")]
    port: u16,
    /// Address to serve on (with --serve).
    #[arg(long, value_name = "HOST", default_value = "localhost", requires = "serve")]
    hostname: String,
    /// Where to write the HTML (default: book.toml's `build.build-dir`, `book/`).
    #[arg(long, value_name = "DIR")]
    dest: Option<PathBuf>,
    /// The folder holding book.toml.
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,
    /// Run record whose verdicts the book shows (default: book.toml's
    /// `preprocessor.tutor.record`, else target/tutor/last-run.json).
    #[arg(long, value_name = "PATH", env = book::RECORD_VAR)]
    record: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum BookCommand {
    /// The mdBook preprocessor: reads `[context, book]` JSON on stdin, writes the book to stdout.
    Preprocess(PreprocessArgs),
}

#[derive(Debug, clap::Args)]
struct PreprocessArgs {
    #[command(subcommand)]
    supports: Option<Supports>,
    /// Run record to read instead of the configured one.
    #[arg(long, value_name = "PATH", env = book::RECORD_VAR)]
    record: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Supports {
    /// Exit 0 if the preprocessor works with this mdBook renderer, 1 if not.
    Supports { renderer: String },
}

pub async fn execute(args: BookArgs) -> anyhow::Result<Exit> {
    match args.command {
        Some(BookCommand::Preprocess(p)) => preprocess(p),
        None => build(args),
    }
}

fn preprocess(args: PreprocessArgs) -> anyhow::Result<Exit> {
    if let Some(Supports::Supports { renderer }) = args.supports {
        return Ok(if book::supports_renderer(&renderer) { Exit::Pass } else { Exit::Fail });
    }
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the book from stdin")?;
    let settings = book::Settings { record: args.record };
    let rewritten = book::preprocess(&input, &settings)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &rewritten).context("writing the book to stdout")?;
    out.flush().context("writing the book to stdout")?;
    Ok(Exit::Pass)
}

fn build(args: BookArgs) -> anyhow::Result<Exit> {
    let mdbook = book::find_mdbook()?;
    let tutor = std::env::current_exe().context("finding the tutor executable")?;
    let serve = args.serve.then(|| book::Serve { hostname: args.hostname.clone(), port: args.port });
    let serving = serve.clone();
    let request =
        book::BuildRequest { root: args.root, dest: args.dest, open: args.open, record: args.record, tutor, serve };
    let (mut cmd, dest) = book::build_command(&mdbook, &request)?;
    if let Some(s) = &serving {
        println!("serving the book on http://{}:{}/ (rebuilt on changes; Ctrl-C stops it)", s.hostname, s.port);
    }
    let status = cmd.status().with_context(|| format!("running {}", mdbook.path.display()))?;
    if !status.success() {
        eprintln!("{} mdbook build failed ({status})", console::style("error:").red().bold());
        return Ok(Exit::Usage);
    }
    println!("book: {}", dest.join("index.html").display());
    Ok(Exit::Pass)
}

//! `tutor book`: run the `mdbook` binary (the one README's set-up installs) with this very
//! executable as the `tutor` preprocessor, whatever `book.toml` says and whether or not `tutor`
//! is on PATH. Linking mdBook's renderer into tutor instead would put handlebars, the search
//! index, the HTTP server and their trees into every build of tutor, for a command that a plain
//! `mdbook build` already does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use mdbook_preprocessor::config::Config;

use super::BookError;

/// The mdBook versions whose preprocessor protocol this build speaks.
pub const MDBOOK_REQUIREMENT: &str = "0.5";

/// mdBook reads configuration overrides from `MDBOOK_*` variables (`__` separates keys).
const COMMAND_VAR: &str = "MDBOOK_PREPROCESSOR__TUTOR__COMMAND";
/// Read by `tutor book preprocess` (as its `--record`).
pub const RECORD_VAR: &str = "TUTOR_RECORD";

#[derive(Debug, Clone)]
pub struct Mdbook {
    pub path: PathBuf,
    /// As `mdbook --version` prints it, without the `v`: `0.5.4`.
    pub version: String,
}

/// `mdbook` on PATH, else where `cargo install` puts it.
pub fn find_mdbook() -> Result<Mdbook, BookError> {
    let path = locate("mdbook").ok_or_else(|| {
        BookError::Mdbook(format!(
            "mdbook is not installed (looked on PATH and in cargo's bin folder): \
             install it with `cargo install mdbook --locked --version ^{MDBOOK_REQUIREMENT}`"
        ))
    })?;
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| BookError::Mdbook(format!("cannot run {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().trim_start_matches("mdbook").trim().trim_start_matches('v').to_string();
    if !version.starts_with(&format!("{MDBOOK_REQUIREMENT}.")) {
        return Err(BookError::Mdbook(format!(
            "{} is version `{version}`; tutor needs mdbook {MDBOOK_REQUIREMENT}.x \
             (`cargo install mdbook --locked --version ^{MDBOOK_REQUIREMENT}`)",
            path.display()
        )));
    }
    Ok(Mdbook { path, version })
}

fn locate(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin"));
    path_dirs.into_iter().chain(cargo_bin).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What `tutor book` was asked for.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// Folder holding `book.toml`.
    pub root: PathBuf,
    pub dest: Option<PathBuf>,
    pub open: bool,
    pub record: Option<PathBuf>,
    /// This executable: mdBook runs it as the preprocessor.
    pub tutor: PathBuf,
    /// `mdbook serve` instead of `mdbook build`: serve on this address and rebuild on changes.
    pub serve: Option<Serve>,
}

/// Where `tutor book --serve` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    pub hostname: String,
    pub port: u16,
}

/// mdBook's list of folders to watch besides the sources (`build.extra-watch-dirs`).
const WATCH_VAR: &str = "MDBOOK_BUILD__EXTRA_WATCH_DIRS";

/// The `mdbook build` command for `req`, and the folder the HTML will be in.
pub fn build_command(mdbook: &Mdbook, req: &BuildRequest) -> Result<(Command, PathBuf), BookError> {
    let toml = req.root.join("book.toml");
    if !toml.is_file() {
        return Err(BookError::Mdbook(format!("{}: no book here (book.toml not found)", req.root.display())));
    }
    let config = Config::from_disk(&toml).map_err(|e| BookError::Config(format!("{}: {e:#}", toml.display())))?;
    let abs = |p: &Path| std::path::absolute(p).map_err(|source| BookError::Io { path: p.to_path_buf(), source });
    let dest = match &req.dest {
        Some(d) => abs(d)?,
        None => abs(&req.root.join(&config.build.build_dir))?,
    };
    let mut cmd = Command::new(&mdbook.path);
    cmd.arg(if req.serve.is_some() { "serve" } else { "build" }).arg(abs(&req.root)?).arg("--dest-dir").arg(&dest);
    if let Some(serve) = &req.serve {
        cmd.arg("--hostname").arg(&serve.hostname).arg("--port").arg(serve.port.to_string());
        cmd.env(WATCH_VAR, watch_dirs(&config, req)?);
    }
    if req.open {
        cmd.arg("--open");
    }
    cmd.env(COMMAND_VAR, preprocessor_command(&req.tutor));
    match &req.record {
        Some(r) => cmd.env(RECORD_VAR, abs(r)?),
        None => cmd.env_remove(RECORD_VAR),
    };
    Ok((cmd, dest))
}

/// What a served book is rebuilt on besides its chapters: the snapshots and the folder of the
/// run record (a new `tutor run` changes the verdicts), on top of the book's own extra folders.
fn watch_dirs(config: &Config, req: &BuildRequest) -> Result<String, BookError> {
    let mut dirs: Vec<PathBuf> = config.build.extra_watch_dirs.iter().map(|d| req.root.join(d)).collect();
    let configured = |key: &str| config.get::<PathBuf>(&format!("preprocessor.tutor.{key}")).ok().flatten();
    dirs.push(req.root.join(configured("snapshots").unwrap_or_else(|| PathBuf::from("snapshots"))));
    let record = match &req.record {
        Some(r) => r.clone(),
        None => req.root.join(configured("record").unwrap_or_else(|| PathBuf::from(super::DEFAULT_RECORD))),
    };
    if let Some(parent) = record.parent() {
        // Watched from the start, so that the first record written is seen too.
        std::fs::create_dir_all(parent).map_err(|source| BookError::Io { path: parent.to_path_buf(), source })?;
        dirs.push(parent.to_path_buf());
    }
    let dirs: Vec<String> = dirs
        .iter()
        .filter(|d| d.is_dir())
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()).display().to_string())
        .collect();
    Ok(serde_json::to_string(&dirs).expect("a list of strings serialises"))
}

/// mdBook splits the command like a POSIX shell (shlex): quote the path when it needs it.
fn preprocessor_command(tutor: &Path) -> OsString {
    let path = tutor.to_string_lossy();
    let safe = path.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c));
    let quoted = if safe { path.into_owned() } else { format!("'{}'", path.replace('\'', r"'\''")) };
    OsString::from(format!("{quoted} book preprocess"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_mdbook() -> Mdbook {
        Mdbook { path: "/usr/bin/mdbook".into(), version: "0.5.4".into() }
    }

    #[test]
    fn command_runs_this_tutor_as_the_preprocessor() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("book.toml"), "[book]\nsrc = \"tutorials\"\n[build]\nbuild-dir = \"out\"\n")
            .unwrap();
        let req = BuildRequest {
            root: d.path().into(),
            dest: None,
            open: true,
            record: Some(d.path().join("r.json")),
            tutor: "/opt/my tools/tutor".into(),
            serve: None,
        };
        let (cmd, dest) = build_command(&fake_mdbook(), &req).unwrap();
        assert_eq!(dest, d.path().join("out"));
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            ["build", &d.path().display().to_string(), "--dest-dir", &dest.display().to_string(), "--open"]
        );
        let env: std::collections::HashMap<_, _> = cmd
            .get_envs()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned())))
            .collect();
        assert_eq!(env[COMMAND_VAR].as_deref(), Some("'/opt/my tools/tutor' book preprocess"));
        assert_eq!(env[RECORD_VAR].as_deref(), Some(d.path().join("r.json").to_str().unwrap()));
    }

    #[test]
    fn no_book_toml_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let req = BuildRequest {
            root: d.path().into(),
            dest: None,
            open: false,
            record: None,
            tutor: "tutor".into(),
            serve: None,
        };
        let e = build_command(&fake_mdbook(), &req).unwrap_err().to_string();
        assert!(e.ends_with("no book here (book.toml not found)"), "{e}");
    }

    #[test]
    fn serve_watches_snapshots_and_the_record() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("book.toml"), "[book]\nsrc = \"tutorials\"\n").unwrap();
        std::fs::create_dir_all(d.path().join("snapshots")).unwrap();
        let req = BuildRequest {
            root: d.path().into(),
            dest: None,
            open: false,
            record: None,
            tutor: "tutor".into(),
            serve: Some(Serve { hostname: "127.0.0.1".into(), port: 3456 }),
        };
        let (cmd, _) = build_command(&fake_mdbook(), &req).unwrap();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args[0], "serve");
        assert!(args.windows(2).any(|w| w == ["--hostname", "127.0.0.1"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["--port", "3456"]), "{args:?}");
        let watch = cmd.get_envs().find(|(k, _)| *k == WATCH_VAR).and_then(|(_, v)| v).unwrap();
        let watch: Vec<String> = serde_json::from_str(&watch.to_string_lossy()).unwrap();
        let root = d.path().display().to_string();
        assert_eq!(watch, [format!("{root}/snapshots"), format!("{root}/target/tutor")]);
        assert!(d.path().join("target/tutor").is_dir());
    }

    #[test]
    fn plain_paths_are_not_quoted() {
        assert_eq!(preprocessor_command(Path::new("/usr/local/bin/tutor")), "/usr/local/bin/tutor book preprocess");
        assert_eq!(preprocessor_command(Path::new("/a/it's")), r"'/a/it'\''s' book preprocess");
    }
}

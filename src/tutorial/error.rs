use std::path::PathBuf;

/// Anything wrong with a tutorial as written. Always names the file and, where there is one,
/// the 1-based line, so an editor can jump there.
#[derive(Debug, thiserror::Error)]
pub enum TutorialError {
    #[error("{}:{line}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("{}: {message}", path.display())]
    Path { path: PathBuf, message: String },
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl TutorialError {
    /// The 1-based line, 0 when the error is about the whole file.
    pub fn line(&self) -> usize {
        match self {
            TutorialError::Syntax { line, .. } => *line,
            TutorialError::Path { .. } | TutorialError::Io { .. } => 0,
        }
    }

    pub(crate) fn at(path: &std::path::Path, line: usize, message: impl Into<String>) -> Self {
        TutorialError::Syntax { path: path.to_path_buf(), line, message: message.into() }
    }
}

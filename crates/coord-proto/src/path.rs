//! Znode path validation, shared by the client (fail early) and the tree (never trust input).

use thiserror::Error;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// The path does not start with `/`.
    #[error("path {0:?} must start with '/'")]
    NotAbsolute(String),
    /// The path ends with `/` and is not the root.
    #[error("path {0:?} must not end with '/'")]
    TrailingSlash(String),
    /// The path has an empty component (`//`).
    #[error("path {0:?} has an empty component")]
    EmptyComponent(String),
    /// The path has a `.` or `..` component.
    #[error("path {0:?} has a relative component ('.' or '..')")]
    RelativeComponent(String),
    /// The path has a NUL or control character.
    #[error("path {0:?} has a NUL or control character at byte {1}")]
    BadCharacter(String, usize),
    /// The path is longer than the limit.
    #[error("path is {0} bytes, over the limit of {1}")]
    TooLong(usize, usize),
}

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// Checks that `path` is an absolute znode path: starts with `/`, no empty components, no
/// trailing slash except for `/` itself, no `.`/`..` components, no NUL or control characters.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong(path.len(), MAX_PATH_LEN));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute(path.to_string()));
    }
    if let Some((i, _)) = path
        .char_indices()
        .find(|(_, c)| c.is_control() || is_invisible(*c))
    {
        return Err(PathError::BadCharacter(path.to_string(), i));
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(PathError::TrailingSlash(path.to_string()));
    }
    for component in path[1..].split('/') {
        match component {
            "" => return Err(PathError::EmptyComponent(path.to_string())),
            "." | ".." => return Err(PathError::RelativeComponent(path.to_string())),
            _ => {}
        }
    }
    Ok(())
}

/// Characters ZooKeeper also refuses: the Unicode ranges it treats as invisible or reserved.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

/// The parent of a valid, non-root path (`/a/b` -> `/a`, `/a` -> `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a valid path (`/a/b` -> `b`; `/` -> ``).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_paths() {
        for p in ["/", "/a", "/a/b", "/a-b_c.d/e f", "/zk/..x", "/héllo"] {
            validate_path(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn refuses_invalid_paths() {
        type Case = (&'static str, fn(&PathError) -> bool);
        let cases: &[Case] = &[
            ("", |e| matches!(e, PathError::Empty)),
            ("a", |e| matches!(e, PathError::NotAbsolute(_))),
            ("/a/", |e| matches!(e, PathError::TrailingSlash(_))),
            ("/a//b", |e| matches!(e, PathError::EmptyComponent(_))),
            ("/a/./b", |e| matches!(e, PathError::RelativeComponent(_))),
            ("/a/..", |e| matches!(e, PathError::RelativeComponent(_))),
            ("/a\0b", |e| matches!(e, PathError::BadCharacter(_, 2))),
            ("/a\nb", |e| matches!(e, PathError::BadCharacter(_, 2))),
        ];
        for (p, ok) in cases {
            let err = validate_path(p).expect_err(p);
            assert!(ok(&err), "{p:?} gave {err:?}");
        }
        assert!(matches!(
            validate_path(&"/a".repeat(3000)),
            Err(PathError::TooLong(..))
        ));
    }

    #[test]
    fn parent_and_basename() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(basename("/a/b/c"), "c");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}

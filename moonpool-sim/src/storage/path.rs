//! What a path names on a simulated disk: a file (by its key), a directory or nothing a file
//! system takes, with the error a real file system gives for the last two.

use std::io;
use std::path::{Path, PathBuf};

use moonpool_core::{StorageError, StorageOperation};

/// What a path names on the simulated disk, which holds files and no directories.
pub(crate) enum Named {
    /// A file, by its key: the path's components without a leading `.` (`./x`, `x` and `a/./x`
    /// name `x`, `x` and `a/x`). An empty path gives an empty key (refused where it is used).
    File(PathBuf),
    /// A directory: `/`, `.`, `..`, or a path whose last component is `..` or the root. On a
    /// real file system these exist and none opens as a file (`EISDIR`).
    Directory,
    /// A path whose last name is followed by a separator (`x/`, `x/.`, `a/x//`), with the key
    /// of that name: it can name only a directory, and the simulated disk holds none. A real
    /// file system opens no file by it and finds nothing there (`x/` does not exist while `x`
    /// is a file); see [`directory_only_error`] for its errors.
    DirectoryOnly(PathBuf),
    /// A path no file system takes: it contains a NUL byte (the standard library refuses it
    /// with `InvalidInput` before any system call).
    Invalid,
}

pub(crate) fn name_of(path: &Path) -> Named {
    use std::path::Component;
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Named::Invalid;
    }
    let mut key = PathBuf::new();
    let mut last = None;
    for component in path.components() {
        if component != Component::CurDir {
            key.push(component.as_os_str());
        }
        last = Some(component);
    }
    match last {
        Some(
            Component::CurDir | Component::ParentDir | Component::RootDir | Component::Prefix(_),
        ) => Named::Directory,
        // `components` drops a trailing separator and a trailing `.`; the bytes still end so.
        _ if ends_as_a_directory(path) => Named::DirectoryOnly(key),
        _ => Named::File(key),
    }
}

/// True when `path` ends in a separator or in a separator and `.`.
fn ends_as_a_directory(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    let bytes = bytes.strip_suffix(b".").unwrap_or(bytes);
    bytes
        .last()
        .is_some_and(|&byte| std::path::is_separator(char::from(byte)))
}

/// The key of the file `path` names, or the error a real file system gives for it.
pub(crate) fn file_key(path: &Path, op: StorageOperation) -> Result<PathBuf, StorageError> {
    match name_of(path) {
        Named::File(key) => Ok(key),
        Named::Directory => Err(StorageError::with_kind(
            op,
            path,
            io::ErrorKind::IsADirectory,
            "the path names a directory, not a file",
        )),
        Named::DirectoryOnly(_) => Err(directory_only_error(op, path, true, false)),
        Named::Invalid => Err(StorageError::with_kind(
            op,
            path,
            io::ErrorKind::InvalidInput,
            "the path contains a NUL byte",
        )),
    }
}

/// The error Linux gives for a path that ends in a separator (`x/`) or a separator and `.`
/// (`x/.`): creating `x/` is `IsADirectory`; otherwise, with a file `x` there, `NotADirectory`,
/// and with none, `NotFound` (creating `x/.` too: `x` would have to be a directory first).
pub(crate) fn directory_only_error(
    op: StorageOperation,
    path: &Path,
    file_exists: bool,
    creating: bool,
) -> StorageError {
    let ends_in_dot = path.as_os_str().as_encoded_bytes().ends_with(b".");
    let (kind, what) = if creating && !ends_in_dot {
        (
            io::ErrorKind::IsADirectory,
            "the path ends in a separator, so it can only name a directory, and the simulated \
             disk holds only files",
        )
    } else if file_exists {
        (
            io::ErrorKind::NotADirectory,
            "the path ends in a separator, and the name before it is a file, not a directory",
        )
    } else {
        (
            io::ErrorKind::NotFound,
            "no such file or directory (the path ends in a separator)",
        )
    };
    StorageError::with_kind(op, path, kind, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Option<PathBuf> {
        match name_of(Path::new(path)) {
            Named::File(key) => Some(key),
            Named::Directory | Named::DirectoryOnly(_) | Named::Invalid => None,
        }
    }

    #[test]
    fn test_paths_name_files_directories_or_nothing() {
        assert_eq!(key("x"), Some(PathBuf::from("x")));
        assert_eq!(key("./x"), Some(PathBuf::from("x")));
        assert_eq!(key("a//b/./c"), Some(PathBuf::from("a/b/c")));
        assert_eq!(key("/abs/x"), Some(PathBuf::from("/abs/x")));
        assert_eq!(key(""), Some(PathBuf::new()));
        for directory in ["/", ".", "./", "..", "a/..", "a/b/.."] {
            assert!(
                matches!(name_of(Path::new(directory)), Named::Directory),
                "{directory}"
            );
        }
        for directory_only in ["x/", "x/.", "a/x//", "/abs/x/", "a/./x/./", "x/./"] {
            assert!(
                matches!(name_of(Path::new(directory_only)), Named::DirectoryOnly(_)),
                "{directory_only}"
            );
        }
        assert_eq!(key("x."), Some(PathBuf::from("x.")));
        assert_eq!(key("a/.x"), Some(PathBuf::from("a/.x")));
        assert!(
            matches!(name_of(Path::new("a/x/.")), Named::DirectoryOnly(k) if k == Path::new("a/x"))
        );
        let error = file_key(Path::new("x/"), StorageOperation::Rename).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotADirectory);
        let open = StorageOperation::Open;
        // (path, file there, creating) -> what Linux says (checked with `open(2)` and `unlink(2)`).
        use io::ErrorKind::{IsADirectory, NotADirectory, NotFound};
        for (path, exists, creating, kind) in [
            ("x/", false, true, IsADirectory),
            ("x/", true, true, IsADirectory),
            ("x/", false, false, NotFound),
            ("x/", true, false, NotADirectory),
            ("x/.", false, true, NotFound),
            ("x/.", true, true, NotADirectory),
            ("x/.", true, false, NotADirectory),
        ] {
            let error = directory_only_error(open, Path::new(path), exists, creating);
            assert_eq!(error.kind(), kind, "{path} {exists} {creating}");
        }
        assert!(matches!(name_of(Path::new("a\0b")), Named::Invalid));
        let error = file_key(Path::new(".."), StorageOperation::Open).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::IsADirectory);
        let error = file_key(Path::new("a\0b"), StorageOperation::Remove).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}

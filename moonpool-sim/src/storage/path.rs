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
        _ => Named::File(key),
    }
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
        Named::Invalid => Err(StorageError::with_kind(
            op,
            path,
            io::ErrorKind::InvalidInput,
            "the path contains a NUL byte",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Option<PathBuf> {
        match name_of(Path::new(path)) {
            Named::File(key) => Some(key),
            Named::Directory | Named::Invalid => None,
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
        assert!(matches!(name_of(Path::new("a\0b")), Named::Invalid));
        let error = file_key(Path::new(".."), StorageOperation::Open).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::IsADirectory);
        let error = file_key(Path::new("a\0b"), StorageOperation::Remove).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}

//! Reading and writing files whole, safely: a read takes only a regular file and never more
//! than a limit (a symbolic link to `/dev/zero`, a FIFO or a 5 GB file cannot hang or
//! exhaust promptctl), and a write never leaves half a file behind, even on a crash or a
//! power cut.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::diagnostic::display_path;

/// Errors reading a file whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path is a symbolic link, folder, FIFO, socket or device.
    #[error(
        "{} is {kind}, not a regular file: promptctl reads only regular files, never through a symbolic link",
        display_path(.path)
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead, for people: `a symbolic link`, `a FIFO`...
        kind: &'static str,
    },
    /// The file is larger than the limit.
    #[error("{} is larger than the limit of {limit} bytes", display_path(.path))]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        limit: u64,
        /// The size seen: the file's, or what was read of a file growing (or a stream)
        /// when the read stopped.
        size: u64,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", display_path(.path))]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ReadError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a file that is not a regular file is, for error messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
    }
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a folder"
    } else {
        "a special file"
    }
}

/// Reads the regular file at `path` whole, refusing a symbolic link (the link itself is
/// looked at, not what it points to), a folder, FIFO, socket or device, and a file of
/// more than `limit` bytes. The file is opened without following links and without
/// blocking, and checked again once open, so a file swapped for a FIFO in between cannot
/// hang the read.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_regular = |file_type| ReadError::NotRegular {
        path: path.to_path_buf(),
        kind: kind_of(file_type),
    };
    let metadata = std::fs::symlink_metadata(path).map_err(io)?;
    if !metadata.file_type().is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.file_type().is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    let too_large = |size| ReadError::TooLarge {
        path: path.to_path_buf(),
        limit,
        size,
    };
    if metadata.len() > limit {
        return Err(too_large(metadata.len()));
    }
    // The file may grow after the size was read: the read itself is bounded too.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads the file a user named at `path` (a symbolic link is followed; a FIFO or process
/// substitution such as `<(cmd)` is read as it streams), stopping with an error past
/// `limit` bytes, so `/dev/zero` cannot exhaust the memory. For files of the repository,
/// use [`read_regular`].
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Reads a file the user named on the command line: inside `root` (the project, whose
/// files anyone who can push to the repository controls) only a regular file is read, as
/// [`read_regular`] does, so a committed link cannot point the read at a secret outside it;
/// elsewhere the path is the user's own choice and is read as [`read_bounded`] reads it
/// (`<(cmd)`, a link). Bounded either way.
pub fn read_named(path: &Path, root: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let inside = match (folder.canonicalize(), root.canonicalize()) {
        (Ok(folder), Ok(root)) => folder.starts_with(root),
        _ => false,
    };
    if inside {
        read_regular(path, limit)
    } else {
        read_bounded(path, limit)
    }
}

/// Bytes as UTF-8 text, or the error of a file that is not.
fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|err| ReadError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, err.utf8_error()),
    })
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    utf8(path, read_bounded(path, limit)?)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    utf8(path, read_regular(path, limit)?)
}

/// Writes `data` to `path` through a temporary file beside it, flushed to the disk and
/// renamed over it, then flushes the folder so that the rename itself survives a power
/// cut; creates the folder when missing. On failure the temporary file is removed and
/// `path` is as it was.
pub fn replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty());
    if let Some(folder) = folder {
        std::fs::create_dir_all(folder)?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let temporary = path.with_file_name(name);
    let written = write_synced(&temporary, data).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return written;
    }
    sync_folder(folder.unwrap_or(Path::new(".")))
}

/// Creates `path` holding `data`, flushed to the disk before it returns.
fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Flushes a folder's entries (a rename into it) to the disk. Some systems cannot open a
/// folder for that (Windows) and some file systems cannot flush one (they answer
/// `EINVAL`); there the rename is as durable as the system makes it.
fn sync_folder(folder: &Path) -> std::io::Result<()> {
    let flushed = std::fs::File::open(folder).and_then(|handle| handle.sync_all());
    match flushed {
        Err(err)
            if cfg!(not(unix))
                || matches!(
                    err.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_limit_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "12345").expect("write");
        assert_eq!(read_regular(&file, 5).expect("reads"), b"12345");
        assert!(matches!(
            read_regular(&file, 4),
            Err(ReadError::TooLarge { limit: 4, .. })
        ));
        assert!(
            read_regular(&dir.path().join("missing"), 5)
                .expect_err("missing")
                .is_not_found()
        );
        assert!(matches!(
            read_regular(dir.path(), 5),
            Err(ReadError::NotRegular {
                kind: "a folder",
                ..
            })
        ));
        #[cfg(unix)]
        {
            let link = dir.path().join("zero.yaml");
            std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
            assert!(matches!(
                read_regular(&link, 5),
                Err(ReadError::NotRegular {
                    kind: "a symbolic link",
                    ..
                })
            ));
        }
    }

    #[test]
    fn replace_writes_whole_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sub/x.json");
        replace(&file, b"one").expect("writes");
        replace(&file, b"two").expect("replaces");
        assert_eq!(std::fs::read(&file).expect("reads"), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub"))
                .expect("dir")
                .count(),
            1
        );
    }
}

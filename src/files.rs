//! Writing files whole: a crash or a full disk never leaves half a file behind.

use std::path::Path;

/// Writes `data` to `path` through a temporary file beside it, renamed over it, creating
/// the folder when missing. On failure the temporary file is removed and `path` is as it
/// was.
pub fn replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder)?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let temporary = path.with_file_name(name);
    let written = std::fs::write(&temporary, data).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

//! Watching a project's files for saves (`promptctl test --watch`).
//!
//! [`Watcher`] watches the prompts folder (prompt files and partials, recursively), the
//! configuration file and the environments file through `notify`, debounced by
//! `notify-debouncer-mini`: a burst of events (an editor's write-then-rename, a `git
//! checkout` touching a hundred files) arrives as one [`Saved`]. Every other file (the
//! recordings folder, editor swap files, build output) is ignored, so saving it wakes
//! nobody.
//!
//! What the watcher hands over is bounded whatever the file system does: two flags and a
//! wake-up, merged until the caller takes them, never a queue of events.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use crate::repo::FileKind;

/// How long the file system must be quiet after a save before it is reported: long enough
/// to merge an editor's write, rename and chmod, short enough to feel immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The operating system refused to watch a folder (inotify limits, permissions).
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The folder.
        path: String,
        /// Why.
        source: notify_debouncer_mini::notify::Error,
    },
}

/// The files of a project that matter to its tests, as absolute paths.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The prompts folder: prompt files and partials under it.
    pub prompts: PathBuf,
    /// `promptctl.toml`.
    pub config: Option<PathBuf>,
    /// `environments.yaml`.
    pub environments: PathBuf,
}

/// What a batch of saves touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saved {
    /// A prompt file or partial.
    pub prompts: bool,
    /// The configuration or the environments file: every test may be affected.
    pub settings: bool,
}

impl Saved {
    fn any(self) -> bool {
        self.prompts || self.settings
    }

    fn merge(&mut self, other: Saved) {
        self.prompts |= other.prompts;
        self.settings |= other.settings;
    }
}

/// The saves seen and not yet taken, and the wake-up of whoever waits for them.
#[derive(Default)]
struct Pending {
    saved: Mutex<Saved>,
    wake: tokio::sync::Notify,
}

/// A running watch; dropping it stops the watching thread.
pub struct Watcher {
    pending: Arc<Pending>,
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl Watched {
    /// What a changed path is to the tests: `None` for a file they do not read.
    fn classify(&self, path: &Path) -> Option<Saved> {
        if let Ok(relative) = path.strip_prefix(&self.prompts) {
            return FileKind::of(relative).map(|_| Saved {
                prompts: true,
                settings: false,
            });
        }
        let settings = self.config.as_deref() == Some(path) || self.environments == path;
        settings.then_some(Saved {
            prompts: false,
            settings: true,
        })
    }

    /// The folders to watch: the prompts folder recursively, and the folders of the two
    /// settings files on their own (a file is replaced by an editor's rename, which only
    /// its folder sees).
    fn folders(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut folders = vec![(self.prompts.clone(), RecursiveMode::Recursive)];
        for file in self.config.iter().chain([&self.environments]) {
            if let Some(parent) = file.parent()
                && parent.is_dir()
                && !parent.starts_with(&self.prompts)
                && !folders.iter().any(|(folder, _)| folder == parent)
            {
                folders.push((parent.to_path_buf(), RecursiveMode::NonRecursive));
            }
        }
        folders
    }
}

impl Watcher {
    /// Starts watching `watched`'s files; the paths are made canonical first, as the file
    /// system reports them.
    pub fn start(watched: &Watched) -> Result<Watcher, WatchError> {
        let canonical = |path: &Path| {
            path.canonicalize().unwrap_or_else(|_| {
                // A file not written yet: its folder's canonical path and its name.
                path.parent()
                    .and_then(|parent| parent.canonicalize().ok())
                    .zip(path.file_name())
                    .map_or_else(|| path.to_path_buf(), |(parent, name)| parent.join(name))
            })
        };
        let watched = Watched {
            prompts: canonical(&watched.prompts),
            config: watched.config.as_deref().map(canonical),
            environments: canonical(&watched.environments),
        };
        let pending = Arc::new(Pending::default());
        let seen = pending.clone();
        let classifier = watched.clone();
        let handler = move |result: DebounceEventResult| {
            let mut saved = Saved::default();
            match result {
                Ok(events) => {
                    for event in events {
                        if let Some(kind) = classifier.classify(&event.path) {
                            saved.merge(kind);
                        }
                    }
                }
                // The watch lost events (an overflowing kernel queue): assume the worst.
                Err(_) => {
                    saved = Saved {
                        prompts: true,
                        settings: true,
                    }
                }
            }
            if saved.any() {
                if let Ok(mut pending) = seen.saved.lock() {
                    pending.merge(saved);
                }
                seen.wake.notify_one();
            }
        };
        let mut debouncer =
            new_debouncer(DEBOUNCE, handler).map_err(|source| WatchError::Watch {
                path: watched.prompts.display().to_string(),
                source,
            })?;
        for (folder, mode) in watched.folders() {
            debouncer
                .watcher()
                .watch(&folder, mode)
                .map_err(|source| WatchError::Watch {
                    path: folder.display().to_string(),
                    source,
                })?;
        }
        Ok(Watcher {
            pending,
            _debouncer: debouncer,
        })
    }

    /// Waits for the next batch of saves that matter, and takes every one seen so far.
    pub async fn saved(&self) -> Saved {
        loop {
            let taken = self
                .pending
                .saved
                .lock()
                .map(|mut saved| std::mem::take(&mut *saved))
                .unwrap_or_default();
            if taken.any() {
                return taken;
            }
            self.pending.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_tests_read_count() {
        let watched = Watched {
            prompts: PathBuf::from("/p/prompts"),
            config: Some(PathBuf::from("/p/promptctl.toml")),
            environments: PathBuf::from("/p/environments.yaml"),
        };
        let prompts = Some(Saved {
            prompts: true,
            settings: false,
        });
        let settings = Some(Saved {
            prompts: false,
            settings: true,
        });
        assert_eq!(watched.classify(Path::new("/p/prompts/a/b.yaml")), prompts);
        assert_eq!(watched.classify(Path::new("/p/prompts/x.j2")), prompts);
        assert_eq!(watched.classify(Path::new("/p/promptctl.toml")), settings);
        assert_eq!(
            watched.classify(Path::new("/p/environments.yaml")),
            settings
        );
        for ignored in [
            "/p/prompts/.recordings/openai/gpt-4o/1.json",
            "/p/prompts/a/.b.yaml.swp",
            "/p/prompts/a/4913",
            "/p/README.md",
            "/p/other.yaml",
        ] {
            assert_eq!(watched.classify(Path::new(ignored)), None, "{ignored}");
        }
    }
}

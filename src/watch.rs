//! Watching a project's files for saves (`promptctl test --watch`).
//!
//! [`Watcher`] watches the prompts folder (prompt files and partials, recursively), the
//! configuration file and the environments file through `notify`, debounced by
//! `notify-debouncer-full`: a burst of events (an editor's write-then-rename, a `git
//! checkout` touching a hundred files) arrives as one [`Saved`]. Only what changes a file
//! counts: creating, removing, renaming and writing it. Opening or reading one is never
//! asked of the kernel, so the watch reading the files after a save, an editor opening
//! them or a `grep` wakes nobody. Every other file (the recordings folder, editor swap
//! files, build output) is ignored, and a symbolic link is never followed.
//!
//! What the watcher hands over is bounded whatever the file system does: three flags and
//! a wake-up, merged until the caller takes them, never a queue of events.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_full::notify::{
    self, EventKind, EventKindMask, RecommendedWatcher, RecursiveMode,
};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer_opt};

use crate::repo::FileKind;

/// How long the file system must be quiet after a save before it is reported: long enough
/// to merge an editor's write, rename and chmod, short enough to feel immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The changes asked of the kernel: creating, removing, renaming, writing (and closing a
/// file written); never opening or reading, nor a mere change of metadata (`touch`).
const CHANGES: EventKindMask = EventKindMask::CREATE
    .union(EventKindMask::REMOVE)
    .union(EventKindMask::MODIFY_DATA)
    .union(EventKindMask::MODIFY_NAME)
    .union(EventKindMask::ACCESS_CLOSE);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The operating system refused to watch a folder (inotify limits, permissions).
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The folder.
        path: String,
        /// Why.
        source: notify::Error,
    },
}

/// The files of a project that matter to its tests, as absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A prompt file or partial, or a folder under the prompts folder.
    pub prompts: bool,
    /// The configuration or the environments file: every test may be affected.
    pub settings: bool,
    /// The prompts folder itself was created, removed or renamed: its watch must be set
    /// again ([`Watcher::rewatch_prompts`]).
    pub prompts_folder: bool,
}

impl Saved {
    fn any(self) -> bool {
        self.prompts || self.settings || self.prompts_folder
    }

    fn merge(&mut self, other: Saved) {
        self.prompts |= other.prompts;
        self.settings |= other.settings;
        self.prompts_folder |= other.prompts_folder;
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
    watched: Watched,
    pending: Arc<Pending>,
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    /// The folders of the settings files, watched for the whole session.
    settings_folders: Vec<PathBuf>,
    /// The nearest existing folder above the prompts folder, when it is not one of the
    /// settings folders: it sees the prompts folder (or a folder on the way) come back.
    ancestor: Option<PathBuf>,
}

impl Watched {
    /// The same files, with the paths made canonical as the file system reports them.
    pub fn canonical(&self) -> Watched {
        let canonical = |path: &Path| {
            path.canonicalize().unwrap_or_else(|_| {
                // A file not written yet: its folder's canonical path and its name.
                path.parent()
                    .and_then(|parent| parent.canonicalize().ok())
                    .zip(path.file_name())
                    .map_or_else(|| path.to_path_buf(), |(parent, name)| parent.join(name))
            })
        };
        Watched {
            prompts: canonical(&self.prompts),
            config: self.config.as_deref().map(canonical),
            environments: canonical(&self.environments),
        }
    }

    /// What a changed path is to the tests: `None` for a file they do not read.
    fn classify(&self, path: &Path) -> Option<Saved> {
        // The prompts folder, or a folder on the way to it, came or went.
        if self.prompts.starts_with(path) {
            return Some(Saved {
                prompts: true,
                prompts_folder: true,
                ..Saved::default()
            });
        }
        if let Ok(relative) = path.strip_prefix(&self.prompts) {
            // A folder moved or removed takes its prompt files with it; a path gone since
            // may have been one.
            let hidden = relative
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
            let file_or_folder =
                FileKind::of(relative).is_some() || (!hidden && (path.is_dir() || !path.exists()));
            return file_or_folder.then_some(Saved {
                prompts: true,
                ..Saved::default()
            });
        }
        let settings = self.config.as_deref() == Some(path) || self.environments == path;
        settings.then_some(Saved {
            settings: true,
            ..Saved::default()
        })
    }

    /// The folders of the two settings files, watched on their own (a file is replaced
    /// by an editor's rename, which only its folder sees).
    fn settings_folders(&self) -> Vec<PathBuf> {
        let mut folders: Vec<PathBuf> = Vec::new();
        let parents = self
            .config
            .iter()
            .chain([&self.environments])
            .filter_map(|file| file.parent());
        for parent in parents {
            if parent.is_dir()
                && !parent.starts_with(&self.prompts)
                && !folders.iter().any(|folder| folder == parent)
            {
                folders.push(parent.to_path_buf());
            }
        }
        folders
    }
}

impl Watcher {
    /// Starts watching `watched`'s files.
    pub fn start(watched: &Watched) -> Result<Watcher, WatchError> {
        let watched = watched.canonical();
        let pending = Arc::new(Pending::default());
        let seen = pending.clone();
        let classifier = watched.clone();
        let handler = move |result: DebounceEventResult| {
            let saved = match result {
                Ok(events) => {
                    let mut saved = Saved::default();
                    for event in events.iter().filter(|e| CHANGES.matches(&e.event.kind)) {
                        for path in &event.event.paths {
                            if let Some(kind) = classifier.classify(path) {
                                saved.merge(kind);
                            }
                        }
                        // The kernel dropped events (its queue overflowed): assume the worst.
                        if event.event.need_rescan() || event.event.kind == EventKind::Other {
                            saved.merge(Saved {
                                prompts: true,
                                settings: true,
                                prompts_folder: true,
                            });
                        }
                    }
                    saved
                }
                Err(_) => Saved {
                    prompts: true,
                    settings: true,
                    prompts_folder: true,
                },
            };
            if saved.any() {
                if let Ok(mut pending) = seen.saved.lock() {
                    pending.merge(saved);
                }
                seen.wake.notify_one();
            }
        };
        let config = notify_debouncer_full::Config::default()
            .with_timeout(DEBOUNCE)
            .with_notify_config(
                notify::Config::default()
                    .with_event_kinds(CHANGES)
                    // As every read of the prompts folder: a link there is never followed
                    // (one to `/` would watch the whole file system).
                    .with_follow_symlinks(false),
            );
        let debouncer =
            new_debouncer_opt(config, handler, RecommendedCache::new()).map_err(|source| {
                WatchError::Watch {
                    path: watched.prompts.display().to_string(),
                    source,
                }
            })?;
        let mut watcher = Watcher {
            settings_folders: watched.settings_folders(),
            watched,
            pending,
            debouncer,
            ancestor: None,
        };
        for folder in watcher.settings_folders.clone() {
            watcher
                .debouncer
                .watch(&folder, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch {
                    path: folder.display().to_string(),
                    source,
                })?;
        }
        watcher.rewatch_prompts()?;
        Ok(watcher)
    }

    /// The files watched, as given to [`Watcher::start`] (made canonical).
    pub fn watched(&self) -> &Watched {
        &self.watched
    }

    /// Watches the prompts folder again (after it, or a folder above it, was removed and
    /// created again, or moved), and the nearest existing folder above it: a folder that
    /// does not exist now is watched once it is created.
    pub fn rewatch_prompts(&mut self) -> Result<(), WatchError> {
        let prompts = self.watched.prompts.clone();
        let _ = self.debouncer.unwatch(&prompts);
        if let Some(old) = self.ancestor.take() {
            let _ = self.debouncer.unwatch(&old);
        }
        let failed = |path: &Path, source| WatchError::Watch {
            path: path.display().to_string(),
            source,
        };
        let ancestor = prompts.ancestors().skip(1).find(|folder| folder.is_dir());
        if let Some(ancestor) = ancestor
            && !self
                .settings_folders
                .iter()
                .any(|folder| folder == ancestor)
        {
            self.debouncer
                .watch(ancestor, RecursiveMode::NonRecursive)
                .map_err(|source| failed(ancestor, source))?;
            self.ancestor = Some(ancestor.to_path_buf());
        }
        if prompts.is_dir() {
            self.debouncer
                .watch(&prompts, RecursiveMode::Recursive)
                .map_err(|source| failed(&prompts, source))?;
        }
        Ok(())
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
        let root = tempfile::tempdir().expect("tempdir");
        let p = |relative: &str| root.path().join(relative);
        std::fs::create_dir_all(p("prompts/team.v2")).expect("folders");
        std::fs::write(p("prompts/team.v2/b.yaml~"), "backup").expect("write");
        std::fs::write(p("prompts/notes.txt"), "notes").expect("write");
        let watched = Watched {
            prompts: p("prompts"),
            config: Some(p("promptctl.toml")),
            environments: p("environments.yaml"),
        };
        let prompts = Some(Saved {
            prompts: true,
            ..Saved::default()
        });
        let settings = Some(Saved {
            settings: true,
            ..Saved::default()
        });
        let folder = Some(Saved {
            prompts: true,
            prompts_folder: true,
            ..Saved::default()
        });
        let cases = [
            ("prompts/a/b.yaml", prompts),
            ("prompts/x.j2", prompts),
            // A folder, whatever its name, and a path gone since (maybe a folder).
            ("prompts/team.v2", prompts),
            ("prompts/gone.v1", prompts),
            ("promptctl.toml", settings),
            ("environments.yaml", settings),
            // The prompts folder, or a folder on the way to it.
            ("prompts", folder),
            ("", folder),
            ("prompts/.recordings/openai/gpt-4o/1.json", None),
            ("prompts/team.v2/.b.yaml.swp", None),
            ("prompts/team.v2/b.yaml~", None),
            ("prompts/notes.txt", None),
            ("README.md", None),
            ("other.yaml", None),
        ];
        for (relative, expected) in cases {
            assert_eq!(watched.classify(&p(relative)), expected, "{relative}");
        }
    }
}

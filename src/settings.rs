//! The settings layer: every value a command needs beyond its own flags, resolved in one
//! place, flag over environment over `promptctl.toml` over default. The environment is
//! read once per process ([`Env::from_process`], at the door); commands receive [`Layers`]
//! and never read a variable themselves.
//!
//! Not here: what `promptctl.toml` holds and how it is found ([`crate::config`]), and the
//! variables read where they are used by design (a provider's API key, read when the
//! provider is called, so a key is never copied into settings; Git's `GIT_AUTHOR_*`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::registry::Timeouts;

/// The variable naming the source `sync` publishes as (over `[sync] source`).
pub const SOURCE_ENV: &str = "PROMPTCTL_SYNC_SOURCE";

/// The longest timeout a setting may ask for: a day.
pub const MAX_TIMEOUT_S: u64 = 24 * 60 * 60;

/// A value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No database URL: no flag, and the variable is unset or empty.
    #[error("no database URL: pass --database-url or set {variable}")]
    NoDatabaseUrl {
        /// The variable `[sync] database_url_env` names.
        variable: String,
    },
    /// A timeout outside 1 s to a day.
    #[error("{name} = {value}: a timeout must be from 1 to {MAX_TIMEOUT_S} seconds")]
    Timeout {
        /// Which setting, as people find it.
        name: String,
        /// The value given.
        value: u64,
    },
    /// A source name that cannot be used.
    #[error("source `{name}` (from {from}): {reason}")]
    Source {
        /// The name given.
        name: String,
        /// Where it came from: `--source`, the variable, `[sync] source` or the folder.
        from: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// An address to listen on that does not parse.
    #[error("cannot listen on `{address}`: {reason}")]
    Listen {
        /// The address given.
        address: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// The process environment, read once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
}

impl Env {
    /// The variables of this process, now.
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    /// An environment holding `pairs` only.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
        }
    }

    /// A variable's value, when it is set and valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(std::ffi::OsStr::new(name))?.to_str()
    }

    /// Whether a variable is set (to anything, the empty string included).
    pub fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(std::ffi::OsStr::new(name))
    }

    /// Whether a variable is set to something other than the empty string.
    pub fn is_set(&self, name: &str) -> bool {
        self.vars
            .get(std::ffi::OsStr::new(name))
            .is_some_and(|v| !v.is_empty())
    }

    /// Whether the terminal may be coloured: `always`/`never` as asked; else on a terminal
    /// (or with `CLICOLOR_FORCE` set, not to `0`), unless `NO_COLOR` is set.
    pub fn color(&self, asked: Option<bool>, is_terminal: bool) -> bool {
        asked.unwrap_or_else(|| {
            let forced = self.is_set("CLICOLOR_FORCE")
                && self.vars.get(std::ffi::OsStr::new("CLICOLOR_FORCE"))
                    != Some(&OsString::from("0"));
            !self.is_set("NO_COLOR") && (forced || is_terminal)
        })
    }

    /// Whether this runs in GitHub Actions (`GITHUB_ACTIONS=true`).
    pub fn github_actions(&self) -> bool {
        self.get("GITHUB_ACTIONS") == Some("true")
    }
}

/// The layers a command's values come from: the environment (read once) and the
/// project's `promptctl.toml`; each method takes the command's flag.
#[derive(Debug, Clone, Copy)]
pub struct Layers<'a> {
    /// The environment.
    pub env: &'a Env,
    /// The project's configuration.
    pub config: &'a Config,
}

impl Layers<'_> {
    /// The database URL: `flag`, else the variable `[sync] database_url_env` names.
    pub fn database_url(&self, flag: Option<&str>) -> Result<String, SettingsError> {
        if let Some(url) = flag {
            return Ok(url.to_owned());
        }
        let variable = &self.config.settings.sync.database_url_env;
        match self.env.get(variable) {
            Some(url) if !url.trim().is_empty() => Ok(url.to_owned()),
            _ => Err(SettingsError::NoDatabaseUrl {
                variable: variable.clone(),
            }),
        }
    }

    /// The source `sync` publishes as: `flag`, else [`SOURCE_ENV`], else `[sync] source`,
    /// else `folder` (the repository's top folder name). Must be a valid source name
    /// ([`crate::registry::sources::source_name_problem`]).
    pub fn sync_source(
        &self,
        flag: Option<&str>,
        folder: Option<String>,
    ) -> Result<String, SettingsError> {
        let (name, from) = if let Some(flag) = flag {
            (flag.to_owned(), "--source".to_owned())
        } else if let Some(value) = self.env.get(SOURCE_ENV).filter(|v| !v.is_empty()) {
            (value.to_owned(), SOURCE_ENV.to_owned())
        } else if let Some(value) = &self.config.settings.sync.source {
            (
                value.clone(),
                "`[sync] source` in promptctl.toml".to_owned(),
            )
        } else {
            (
                folder.unwrap_or_default(),
                "the repository's folder name".to_owned(),
            )
        };
        match crate::registry::sources::source_name_problem(&name) {
            None => Ok(name),
            Some(reason) => Err(SettingsError::Source { name, from, reason }),
        }
    }

    /// How long to wait for PostgreSQL (`[database]`).
    pub fn database_timeouts(&self) -> Result<Timeouts, SettingsError> {
        let database = &self.config.settings.database;
        Ok(Timeouts {
            connect: timeout(database.connect_timeout_s, "[database] connect_timeout_s")?,
            query: timeout(database.query_timeout_s, "[database] query_timeout_s")?,
        })
    }

    /// Where `serve` listens: `flag`, else `[serve] listen`.
    pub fn listen(&self, flag: Option<&str>) -> Result<SocketAddr, SettingsError> {
        let address = flag.unwrap_or(&self.config.settings.serve.listen);
        address
            .parse()
            .map_err(|err: std::net::AddrParseError| SettingsError::Listen {
                address: address.to_owned(),
                reason: err.to_string(),
            })
    }

    /// Where `serve` reads: `flag`, else `[serve] read_database_url`, else `primary`.
    pub fn read_database_url(&self, flag: Option<&str>, primary: &str) -> String {
        flag.map(str::to_owned)
            .or_else(|| self.config.settings.serve.read_database_url.clone())
            .unwrap_or_else(|| primary.to_owned())
    }

    /// `serve`'s read and run tokens, from the variables `[serve] read_tokens_env` and
    /// `run_tokens_env` name (comma-separated).
    pub fn tokens(&self) -> (Vec<String>, Vec<String>) {
        let tokens = |variable: &str| {
            self.env
                .get(variable)
                .map(|text| {
                    text.split(',')
                        .map(str::trim)
                        .filter(|token| !token.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let serve = &self.config.settings.serve;
        (
            tokens(&serve.read_tokens_env),
            tokens(&serve.run_tokens_env),
        )
    }

    /// How long `serve`'s cached reads stay fresh: `flag` (seconds), else
    /// `[serve] cache_ttl_s`.
    pub fn cache_ttl(&self, flag: Option<u64>) -> Duration {
        Duration::from_secs(flag.unwrap_or(self.config.settings.serve.cache_ttl_s))
    }

    /// How many model calls `test` makes at once: `flag`, else `[test] concurrency`.
    pub fn concurrency(&self, flag: Option<usize>) -> usize {
        flag.unwrap_or(self.config.settings.test.concurrency)
    }
}

/// A timeout setting named `name` as a duration: from 1 s to a day.
pub fn timeout(value: u64, name: &str) -> Result<Duration, SettingsError> {
    if (1..=MAX_TIMEOUT_S).contains(&value) {
        Ok(Duration::from_secs(value))
    } else {
        Err(SettingsError::Timeout {
            name: name.to_owned(),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        let dir = tempfile::tempdir().expect("folder");
        std::fs::write(dir.path().join("promptctl.toml"), toml).expect("writes");
        Config::discover(dir.path()).expect("config")
    }

    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file() {
        let config = config("[sync]\ndatabase_url_env = \"PROMPTS_DB\"\n");
        let env = Env::from_pairs([("PROMPTS_DB", "postgres://env"), ("DATABASE_URL", "x")]);
        let layers = Layers {
            env: &env,
            config: &config,
        };
        assert_eq!(
            layers.database_url(Some("postgres://flag")).expect("url"),
            "postgres://flag"
        );
        assert_eq!(layers.database_url(None).expect("url"), "postgres://env");
        let empty = Env::from_pairs([("PROMPTS_DB", " ")]);
        let layers = Layers {
            env: &empty,
            config: &config,
        };
        assert!(matches!(
            layers.database_url(None),
            Err(SettingsError::NoDatabaseUrl { variable }) if variable == "PROMPTS_DB"
        ));
        assert_eq!(layers.concurrency(Some(3)), 3);
        assert_eq!(layers.concurrency(None), config.settings.test.concurrency);
    }

    #[test]
    fn the_sync_source_is_the_flag_the_variable_the_file_then_the_folder() {
        let named = config("[sync]\nsource = \"from-file\"\n");
        let unnamed = config("");
        let env = Env::from_pairs([(SOURCE_ENV, "from-env")]);
        let none = Env::default();
        let layers = |env, config| Layers { env, config };
        let folder = || Some("folder".to_owned());
        let source = |l: Layers<'_>, flag| l.sync_source(flag, folder()).ok();
        assert_eq!(
            source(layers(&env, &named), Some("flag")).as_deref(),
            Some("flag")
        );
        assert_eq!(
            source(layers(&env, &named), None).as_deref(),
            Some("from-env")
        );
        assert_eq!(
            source(layers(&none, &named), None).as_deref(),
            Some("from-file")
        );
        assert_eq!(
            source(layers(&none, &unnamed), None).as_deref(),
            Some("folder")
        );
        assert!(matches!(
            layers(&none, &unnamed).sync_source(Some("a:b"), folder()),
            Err(SettingsError::Source { from, .. }) if from == "--source"
        ));
        assert!(layers(&none, &unnamed).sync_source(None, None).is_err());
    }

    #[test]
    fn colour_follows_the_flag_then_no_color_then_the_terminal() {
        let plain = Env::default();
        assert!(plain.color(None, true));
        assert!(!plain.color(None, false));
        assert!(!plain.color(Some(false), true));
        let no_color = Env::from_pairs([("NO_COLOR", "1")]);
        assert!(!no_color.color(None, true));
        assert!(no_color.color(Some(true), false));
        assert!(Env::from_pairs([("CLICOLOR_FORCE", "1")]).color(None, false));
        assert!(!Env::from_pairs([("CLICOLOR_FORCE", "0")]).color(None, false));
        assert!(timeout(0, "x").is_err() && timeout(MAX_TIMEOUT_S + 1, "x").is_err());
    }
}

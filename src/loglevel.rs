//! Sentinel's `loglevel` over this process's tracing filter, so that `SENTINEL CONFIG SET
//! loglevel debug` works as it does on a sentinel. The filter is process-wide (tracing's
//! subscriber is global), so the switch is too: `main` installs it once at start.

use std::sync::{Mutex, OnceLock, PoisonError};

/// Sentinel's five levels, each mapped onto a tracing filter. `notice` is Sentinel's default
/// and raftinel's default filter; `verbose` adds raftinel's own debug lines; `debug` adds
/// every crate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Verbose,
    Notice,
    Warning,
    Nothing,
}

/// raftinel's filter when neither RUST_LOG nor a `loglevel` change says otherwise.
pub const DEFAULT_FILTER: &str = "info,openraft=warn,sled=warn,h2=warn,tower=warn";

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Debug,
        Level::Verbose,
        Level::Notice,
        Level::Warning,
        Level::Nothing,
    ];

    /// Sentinel's name, matched without regard to case as `strcasecmp` does.
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Verbose => "verbose",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Nothing => "nothing",
        }
    }

    /// The tracing filter directive the level stands for.
    pub fn filter(self) -> &'static str {
        match self {
            Level::Debug => "debug,h2=info,tower=info",
            Level::Verbose => "info,raftinel=debug,openraft=warn,sled=warn,h2=warn,tower=warn",
            Level::Notice => DEFAULT_FILTER,
            Level::Warning => "warn",
            Level::Nothing => "off",
        }
    }
}

type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static APPLY: OnceLock<Apply> = OnceLock::new();
/// The level last set; `notice` until then (whatever filter the node started with).
static CURRENT: Mutex<Level> = Mutex::new(Level::Notice);

/// Installs the function that replaces the process's filter (called once, by `main`).
pub fn install(apply: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    // A second install would be a programming error; the first one stays.
    let _ = APPLY.set(Box::new(apply));
}

pub fn current() -> Level {
    *CURRENT.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
pub enum LogLevelError {
    #[error("this process has no reloadable log filter")]
    NotInstalled,
    #[error("the log filter was not changed: {0}")]
    Reload(String),
}

/// Switches the process's filter to `level`.
pub fn set(level: Level) -> Result<(), LogLevelError> {
    let apply = APPLY.get().ok_or(LogLevelError::NotInstalled)?;
    let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
    apply(level.filter()).map_err(LogLevelError::Reload)?;
    *current = level;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_without_regard_to_case() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Some(l));
            assert_eq!(Level::parse(&l.name().to_ascii_uppercase()), Some(l));
        }
        assert_eq!(Level::parse("info"), None);
        assert_eq!(Level::parse(""), None);
    }

    #[test]
    fn every_filter_parses() {
        for l in Level::ALL {
            assert!(
                tracing_subscriber::EnvFilter::try_new(l.filter()).is_ok(),
                "{l:?}"
            );
        }
    }
}

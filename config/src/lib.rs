//! `labnet-config`: the one TOML file that every labnet daemon and `labnetctl` read.
//!
//! Two layers, as in dora: [`raw`] holds serde structs that mirror the file
//! (`deny_unknown_fields`, values that parse on their own such as addresses
//! and durations are parsed right there, so a bad one is reported by the TOML
//! parser with its line); [`Config::parse`] then checks what only makes sense
//! across keys (a pool outside its subnet, two subnets that overlap) and
//! reports the key and the line of the offending value.
//!
//! A section that is absent means "this daemon is not configured": a daemon
//! refuses to start without its own section, the others ignore it.

mod raw;
mod types;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use types::*;

/// Why a config file was refused. Every variant names the file; parse and
/// validation errors also name the line and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
    #[error("{path}: section [{section}] is required by {daemon}")]
    MissingSection {
        path: PathBuf,
        section: &'static str,
        daemon: &'static str,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from (for messages).
    pub path: PathBuf,
    pub store: StoreConfig,
    pub dhcp: Option<DhcpConfig>,
    pub tftp: Option<TftpConfig>,
    pub http: Option<HttpConfig>,
    pub pxe: Option<PxeConfig>,
    pub dns: Option<DnsConfig>,
    pub metrics: Option<MetricsConfig>,
    /// Lines of the keys that [`Config::check_tftp_dirs`] and
    /// [`Config::dns_root_hints`] check later.
    pub(crate) lines: std::collections::HashMap<&'static str, usize>,
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            // TOML is UTF-8 (TOML 1.0 §"Spec"); say where it stops being so.
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            ConfigError::Invalid {
                path: path.to_owned(),
                line: good.iter().filter(|b| **b == b'\n').count() + 1,
                key: "(file)".into(),
                reason: "not UTF-8 text; save the file as UTF-8".into(),
            }
        })?;
        Config::parse(&text, path)
    }

    /// What only the TFTP server's machine can check: `tftp.root` (and
    /// `tftp.upload_dir`) exist and are directories. `labnet-tftpd
    /// --check-config` runs it, so a typo is caught before the first boot.
    pub fn check_tftp_dirs(&self) -> Result<(), ConfigError> {
        let Some(t) = &self.tftp else {
            return Ok(());
        };
        let dirs = [
            ("tftp.root", Some(&t.root)),
            ("tftp.upload_dir", t.upload_dir.as_ref()),
        ];
        for (key, dir) in dirs {
            let Some(dir) = dir else { continue };
            let reason = match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => format!("{} is not a directory", dir.display()),
                Err(e) => format!("{}: {e}", dir.display()),
            };
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                line: self.lines.get(key).copied().unwrap_or(1),
                key: key.into(),
                reason,
            });
        }
        Ok(())
    }

    /// What only the DNS server's machine can check: the root server
    /// addresses in `dns.root_hints` (`None` without that key). `labnet-dnsd
    /// --check-config` runs it.
    pub fn dns_root_hints(&self) -> Result<Option<Vec<std::net::IpAddr>>, ConfigError> {
        let Some(path) = self.dns.as_ref().and_then(|d| d.root_hints.as_ref()) else {
            return Ok(None);
        };
        raw::read_root_hints(path)
            .map(Some)
            .map_err(|reason| ConfigError::Invalid {
                path: self.path.clone(),
                line: self.lines.get("dns.root_hints").copied().unwrap_or(1),
                key: "dns.root_hints".into(),
                reason,
            })
    }

    /// What only the DNS server's machine can read: the text of
    /// `dns.trust_anchors` (`None` without that key). The DNS server parses
    /// it and reports what is wrong with [`Config::invalid_key`].
    pub fn dns_trust_anchors(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = self.dns.as_ref().and_then(|d| d.trust_anchors.as_ref()) else {
            return Ok(None);
        };
        std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| self.invalid_key("dns.trust_anchors", format!("{}: {e}", path.display())))
    }

    /// An error about a key of this file that a daemon found wrong after
    /// parsing (the contents of a file it names), with the key's line.
    pub fn invalid_key(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: self.lines.get(key).copied().unwrap_or(1),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// Validate config text; `path` is only used in messages.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let ctx = Ctx {
            text,
            path: path.as_ref(),
        };
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ctx.toml_error(&e))?;
        raw.validate(&ctx)
    }

    /// The DHCP section, or an error naming it for `daemon`.
    pub fn require_dhcp(&self, daemon: &'static str) -> Result<&DhcpConfig, ConfigError> {
        self.dhcp
            .as_ref()
            .ok_or_else(|| self.missing("dhcp", daemon))
    }

    pub fn require_tftp(&self, daemon: &'static str) -> Result<&TftpConfig, ConfigError> {
        self.tftp
            .as_ref()
            .ok_or_else(|| self.missing("tftp", daemon))
    }

    pub fn require_dns(&self, daemon: &'static str) -> Result<&DnsConfig, ConfigError> {
        self.dns.as_ref().ok_or_else(|| self.missing("dns", daemon))
    }

    /// Where `daemon` (`labnet-dhcpd`, `labnet-dnsd`, `labnet-tftpd`)
    /// serves its metrics, if anywhere.
    pub fn metrics_listen(&self, daemon: &str) -> Option<std::net::SocketAddr> {
        let m = self.metrics.as_ref()?;
        match daemon.strip_prefix("labnet-").unwrap_or(daemon) {
            "dhcpd" => m.dhcpd,
            "dnsd" => m.dnsd,
            "tftpd" => m.tftpd,
            _ => None,
        }
    }

    fn missing(&self, section: &'static str, daemon: &'static str) -> ConfigError {
        ConfigError::MissingSection {
            path: self.path.clone(),
            section,
            daemon,
        }
    }
}

/// What validation needs to turn a byte span into "line N, key K".
pub(crate) struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn invalid(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: self.line_of(span.start),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A TOML or serde error: the parser knows the span; the key is whatever
    /// stands left of `=` on that line (or the table header).
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let start = e.span().map(|s| s.start).unwrap_or(0);
        let line = self.line_of(start);
        let text = self.text.lines().nth(line - 1).unwrap_or("");
        let key = match text.split_once('=') {
            Some((k, _)) => k.trim().to_owned(),
            None => text.trim().to_owned(),
        };
        // A missing field points at its table's header, or (for a
        // top-level section, e.g. in an empty file) at nothing: name the
        // field, under its table when there is one.
        let key = match e.message().strip_prefix("missing field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or(rest);
                let table = text.trim().trim_start_matches('[').trim_end_matches(']');
                if e.span().is_some() && text.trim().starts_with('[') {
                    format!("{table}.{field}")
                } else {
                    field.to_owned()
                }
            }
            None => key,
        };
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            key,
            reason: e.message().trim().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;

//! The model config file: per provider, where to reach it, where its API
//! key comes from and its default model; and the default `--model`.
//!
//! Found at `$CLAWCAGE_HOME/config.toml` (the state directory), or given
//! with `--config FILE`:
//!
//! ```toml
//! model = "anthropic:claude-sonnet-4-5"     # the default --model
//!
//! [providers.anthropic]
//! base_url = "https://llm-gateway.corp/anthropic"
//! api_key_env = "CORP_ANTHROPIC_KEY"        # the variable that holds the key
//! model = "claude-sonnet-4-5"               # `--model anthropic` means this one
//!
//! [providers.lab]                           # a provider of your own naming
//! wire = "openai"                           # the API it speaks: anthropic | openai
//! base_url = "http://10.0.0.7:8000/v1"
//! api_key_file = "/etc/clawcage/lab.key"    # mode 0600; the key is its content
//! ```
//!
//! A key is never written in this file (`api_key` is refused): it comes
//! from a variable or from a file of its own. The environment and flags
//! override the file: `--model`, then `CLAWCAGE_MODEL`, then `model`;
//! `NAME_BASE_URL` and `NAME_API_KEY` (NAME the provider's name in capitals,
//! `-` as `_`) over `base_url` and the key source. Errors name
//! `file:line:column: field` (the CLI exits 125).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Why the config file (or what it points to) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A value (or the file's syntax) is wrong, or what it names is unusable.
    #[error("{at}: {message}")]
    Invalid {
        /// Where: file, line, column, field.
        at: Origin,
        /// What is wrong.
        message: String,
    },
}

/// Where in the file a value was written, for errors found later (a key
/// variable that is not set, a key file that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    file: String,
    line: usize,
    column: usize,
    field: String,
}

impl Origin {
    /// An error about the value written here.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { at: self.clone(), message: message.into() }
    }
}

impl std::fmt::Display for Origin {
    /// `file:line:column: field`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.field)
    }
}

/// A value from the file and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub origin: Origin,
}

/// Where a provider's API key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// This environment variable.
    Env(String),
    /// The content of this file (trailing whitespace cut).
    File(std::path::PathBuf),
}

/// One `[providers.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderEntry {
    /// `wire`: which API a provider of our own naming speaks.
    pub wire: Option<Located<super::provider::Wire>>,
    /// `base_url`.
    pub base_url: Option<Located<String>>,
    /// `api_key_env` or `api_key_file`.
    pub key: Option<Located<KeySource>>,
    /// `model`: the model `--model NAME` (no `:MODEL`) means.
    pub model: Option<Located<String>>,
}

/// The parsed config file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelConfig {
    /// `model`: the default `provider:model`.
    pub model: Option<Located<String>>,
    /// `[providers.NAME]`.
    pub providers: BTreeMap<String, ProviderEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    model: Option<Spanned<String>>,
    #[serde(default)]
    providers: BTreeMap<String, Spanned<RawProvider>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    wire: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    /// Refused with a clear word: keys are never inline.
    api_key: Option<Spanned<toml::Value>>,
    model: Option<Spanned<String>>,
}

impl ModelConfig {
    /// Read and check the file at `path`.
    pub fn load(path: &Path) -> Result<ModelConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { file: file.clone(), source })?;
        ModelConfig::parse(&text, &file)
    }

    /// `$STATE/config.toml` when it exists; `None` when it does not.
    pub fn load_default(state_dir: &Path) -> Result<Option<ModelConfig>, ConfigError> {
        let path = state_dir.join("config.toml");
        match path.try_exists() {
            Ok(false) => Ok(None),
            Ok(true) => ModelConfig::load(&path).map(Some),
            Err(source) => Err(ConfigError::Io { file: path.display().to_string(), source }),
        }
    }

    /// Parse and check `text`, naming `file` in errors.
    pub fn parse(text: &str, file: &str) -> Result<ModelConfig, ConfigError> {
        let cx = Cx { file, text };
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            // toml's `Spanned` shows up in the path as private segments.
            let path = e.path().to_string();
            let field: Vec<&str> = path.split('.').filter(|s| !s.starts_with("$__serde_spanned")).collect();
            let field = field.join(".");
            let inner = e.into_inner();
            let message = inner.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
            cx.err(&inner.span().unwrap_or(0..0), if field == "." { "" } else { &field }, message.join("; "))
        })?;
        let mut config = ModelConfig { model: None, providers: BTreeMap::new() };
        if let Some(m) = raw.model {
            let (provider, name) = m.get_ref().split_once(':').unwrap_or((m.get_ref(), ""));
            if provider.is_empty() || name.is_empty() {
                return Err(cx.at(&m, "model", "expected provider:model, e.g. anthropic:claude-sonnet-4-5"));
            }
            config.model = Some(cx.located(m, "model"));
        }
        for (name, table) in raw.providers {
            let field = |f: &str| format!("providers.{name}.{f}");
            let span = table.span();
            let p = table.into_inner();
            if !valid_name(&name) {
                return Err(cx.err(&span, &format!("providers.{name}"), "a provider name is letters, digits, - and _"));
            }
            if let Some(k) = &p.api_key {
                return Err(cx.at(
                    k,
                    &field("api_key"),
                    "the key is never written in the config: name its variable (api_key_env) or its file (api_key_file)",
                ));
            }
            let mut entry = ProviderEntry::default();
            if let Some(w) = p.wire {
                let wire = match w.get_ref().as_str() {
                    "anthropic" => super::provider::Wire::Anthropic,
                    "openai" => super::provider::Wire::OpenAi,
                    other => return Err(cx.at(&w, &field("wire"), format!("{other:?}: expected anthropic or openai"))),
                };
                entry.wire = Some(Located { value: wire, origin: cx.origin(&w.span(), &field("wire")) });
            } else if super::provider::builtin(&name).is_none() {
                return Err(cx.err(
                    &span,
                    &format!("providers.{name}"),
                    "not a built-in provider (anthropic, openai, ollama, vllm): say which API it speaks with wire = \"anthropic\" or \"openai\"",
                ));
            }
            if p.base_url.is_none() && super::provider::builtin(&name).is_none() {
                return Err(cx.err(&span, &format!("providers.{name}"), "a provider of your own needs base_url"));
            }
            if let Some(u) = p.base_url {
                if !(u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://")) {
                    return Err(cx.at(&u, &field("base_url"), format!("{:?} is not an http(s) URL", u.get_ref())));
                }
                entry.base_url = Some(cx.located(u, &field("base_url")));
            }
            entry.key = match (p.api_key_env, p.api_key_file) {
                (Some(_), Some(f)) => {
                    return Err(cx.at(&f, &field("api_key_file"), "give api_key_env or api_key_file, not both"))
                }
                (Some(v), None) => {
                    if v.get_ref().is_empty() || v.get_ref().contains('=') {
                        return Err(cx.at(&v, &field("api_key_env"), "expected the name of an environment variable"));
                    }
                    let origin = cx.origin(&v.span(), &field("api_key_env"));
                    Some(Located { value: KeySource::Env(v.into_inner()), origin })
                }
                (None, Some(f)) => {
                    if !Path::new(f.get_ref()).is_absolute() {
                        return Err(cx.at(&f, &field("api_key_file"), "expected an absolute path"));
                    }
                    let origin = cx.origin(&f.span(), &field("api_key_file"));
                    Some(Located { value: KeySource::File(f.into_inner().into()), origin })
                }
                (None, None) => None,
            };
            if let Some(m) = p.model {
                if m.get_ref().is_empty() {
                    return Err(cx.at(&m, &field("model"), "the model name is empty"));
                }
                entry.model = Some(cx.located(m, &field("model")));
            }
            config.providers.insert(name, entry);
        }
        Ok(config)
    }
}

/// Read a key file: private to its owner, not empty.
pub(crate) fn read_key_file(path: &Path, origin: &Origin) -> Result<String, ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| origin.error(format!("{shown}: {e}")))?;
    if meta.mode() & 0o077 != 0 {
        return Err(origin.error(format!(
            "{shown}: mode {:o} lets group or others read the key; chmod 600 it",
            meta.mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| origin.error(format!("{shown}: {e}")))?;
    let key = text.trim_end();
    if key.is_empty() {
        return Err(origin.error(format!("{shown} is empty")));
    }
    Ok(key.to_string())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

struct Cx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Cx<'_> {
    fn origin(&self, span: &Range<usize>, field: &str) -> Origin {
        let (line, column) = clawcage_policy::error::line_col(self.text, span.start);
        Origin { file: self.file.to_string(), line, column, field: field.to_string() }
    }

    fn err(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        self.origin(span, field).error(message)
    }

    fn at<T>(&self, v: &Spanned<T>, field: &str, message: impl Into<String>) -> ConfigError {
        self.err(&v.span(), field, message)
    }

    fn located<T>(&self, v: Spanned<T>, field: &str) -> Located<T> {
        let origin = self.origin(&v.span(), field);
        Located { value: v.into_inner(), origin }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn err(text: &str) -> String {
        ModelConfig::parse(text, "config.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_full_config_parses() {
        let c = ModelConfig::parse(
            "model = \"lab:qwen\"\n[providers.anthropic]\nbase_url = \"https://gw/a\"\napi_key_env = \"K\"\nmodel = \"claude-x\"\n\
             [providers.lab]\nwire = \"openai\"\nbase_url = \"http://10.0.0.7:8000/v1\"\napi_key_file = \"/etc/k\"\n",
            "config.toml",
        )
        .unwrap();
        assert_eq!(c.model.as_ref().unwrap().value, "lab:qwen");
        let a = &c.providers["anthropic"];
        assert_eq!(a.key.as_ref().unwrap().value, KeySource::Env("K".into()));
        assert_eq!(a.model.as_ref().unwrap().origin.line, 5);
        let lab = &c.providers["lab"];
        assert_eq!(lab.wire.as_ref().unwrap().value, crate::provider::Wire::OpenAi);
        assert_eq!(lab.key.as_ref().unwrap().value, KeySource::File("/etc/k".into()));
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        assert_eq!(
            err("[providers.anthropic]\napi_key = \"sk-ant-123\"\n"),
            "config.toml:2:11: providers.anthropic.api_key: the key is never written in the config: name its variable (api_key_env) or its file (api_key_file)"
        );
        assert!(err("[providers.openai]\nbase_url = \"ftp://x\"\n")
            .starts_with("config.toml:2:12: providers.openai.base_url:"));
        assert!(err("model = \"claude\"\n").starts_with("config.toml:1:9: model: expected provider:model"));
        let e = err("[providers.anthropic]\nbaseurl = \"https://x\"\n");
        assert!(e.starts_with("config.toml:2:1: providers.anthropic.baseurl: unknown field `baseurl`"), "{e}");
        let e = err("[providers.groq]\nbase_url = \"https://x\"\n");
        assert!(e.starts_with("config.toml:1:1: providers.groq: not a built-in provider"), "{e}");
        let e = err("[providers.lab]\nwire = \"grpc\"\n");
        assert!(e.starts_with("config.toml:2:8: providers.lab.wire: \"grpc\": expected anthropic or openai"), "{e}");
        let e = err("[providers.openai]\napi_key_env = \"A\"\napi_key_file = \"/k\"\n");
        assert!(
            e.starts_with("config.toml:3:16: providers.openai.api_key_file: give api_key_env or api_key_file"),
            "{e}"
        );
        assert!(err("[providers.openai]\napi_key_file = \"k.txt\"\n").contains("absolute path"));
        assert!(err("model = 3\n").starts_with("config.toml:1:9: model:"));
    }
}

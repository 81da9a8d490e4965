//! Model providers: the Anthropic Messages API and OpenAI-compatible Chat
//! Completions (OpenAI, Ollama, vLLM), both streamed, with retries.
//!
//! A provider is chosen by `provider:model` (`anthropic:claude-sonnet-4-5`,
//! `openai:gpt-4o`, `ollama:llama3`, `vllm:NAME`); its base URL and key come
//! from the environment ([`ProviderConfig::from_spec`]).

mod anthropic;
mod openai;
pub mod price;
mod sse;

use crate::config::{KeySource, Located, ModelConfig};
use crate::conversation::{ModelResponse, ToolSpec, Turn};
use std::time::Duration;

pub use sse::SseParser;

/// Which wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Anthropic Messages API (`POST /v1/messages`).
    Anthropic,
    /// OpenAI Chat Completions (`POST /chat/completions`).
    OpenAi,
}

/// How retries back off.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// Delay before the first retry; doubled for each one after.
    pub base: Duration,
    /// Longest delay between attempts (a longer `retry-after` is capped to it).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 6, base: Duration::from_millis(500), max: Duration::from_secs(60) }
    }
}

/// A provider, its model, and where and how to reach it.
#[derive(Clone, PartialEq)]
pub struct ProviderConfig {
    /// The provider's name as written (`anthropic`, `openai`, `ollama`, `vllm`).
    pub provider: String,
    /// Wire format.
    pub wire: Wire,
    /// Model name sent to the API.
    pub model: String,
    /// Base URL (Anthropic: without `/v1`; OpenAI-compatible: up to `/v1`).
    pub base_url: String,
    /// API key (never logged; `None` for local servers without one).
    pub api_key: Option<String>,
    /// Where the key comes from (a variable's name, a file), for error messages.
    pub key_source: String,
    /// Retries on 429, 5xx and overload.
    pub retry: RetryPolicy,
    /// Output tokens per model call.
    pub max_tokens: u32,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// A provider clawcage knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Builtin {
    /// Its wire format.
    pub(crate) wire: Wire,
    /// Its base URL unless configured.
    pub(crate) default_url: &'static str,
    /// Whether it refuses requests without a key.
    pub(crate) key_required: bool,
}

/// The built-in provider `name`, if it is one.
pub(crate) fn builtin(name: &str) -> Option<Builtin> {
    let b = |wire, default_url, key_required| Some(Builtin { wire, default_url, key_required });
    match name {
        "anthropic" => b(Wire::Anthropic, "https://api.anthropic.com", true),
        "openai" => b(Wire::OpenAi, "https://api.openai.com/v1", true),
        "ollama" => b(Wire::OpenAi, "http://127.0.0.1:11434/v1", false),
        "vllm" => b(Wire::OpenAi, "http://127.0.0.1:8000/v1", false),
        _ => None,
    }
}

/// `NAME_SUFFIX` for provider `name` (`ANTHROPIC_API_KEY`, `MY_LAB_BASE_URL`).
fn env_name(provider: &str, suffix: &str) -> String {
    format!("{}_{suffix}", provider.to_ascii_uppercase().replace('-', "_"))
}

impl ProviderConfig {
    /// Parse `provider:model` and take the base URL and key from `env`:
    ///
    /// | provider  | wire      | base URL variable (default)                       | key variable        |
    /// |-----------|-----------|---------------------------------------------------|---------------------|
    /// | anthropic | Anthropic | `ANTHROPIC_BASE_URL` (`https://api.anthropic.com`) | `ANTHROPIC_API_KEY` (required) |
    /// | openai    | OpenAI    | `OPENAI_BASE_URL` (`https://api.openai.com/v1`)   | `OPENAI_API_KEY` (required) |
    /// | ollama    | OpenAI    | `OLLAMA_BASE_URL` (`http://127.0.0.1:11434/v1`)   | `OLLAMA_API_KEY` (optional) |
    /// | vllm      | OpenAI    | `VLLM_BASE_URL` (`http://127.0.0.1:8000/v1`)      | `VLLM_API_KEY` (optional) |
    pub fn from_spec(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ProviderConfig, ProviderError> {
        ProviderConfig::resolve(spec, None, env)
    }

    /// Like [`ProviderConfig::from_spec`], with the model config file's
    /// `[providers.NAME]` under the environment: `NAME_BASE_URL` over
    /// `base_url` over the default; `NAME_API_KEY` over `api_key_env` /
    /// `api_key_file`. `spec` may be just `NAME` when the file gives that
    /// provider a `model`.
    pub fn resolve(
        spec: &str,
        config: Option<&ModelConfig>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProviderConfig, ProviderError> {
        let bad = |why: String| ProviderError::Config(format!("--model {spec:?}: {why}"));
        let from_file = |e: crate::config::ConfigError| ProviderError::Config(e.to_string());
        let entry_of = |name: &str| config.and_then(|c| c.providers.get(name));
        let (provider, model) = match spec.split_once(':') {
            Some((p, m)) => (p, m.to_string()),
            None => match entry_of(spec).and_then(|e| e.model.as_ref()) {
                Some(m) => (spec, m.value.clone()),
                None => {
                    return Err(bad("expected provider:model (anthropic:..., openai:..., ollama:..., vllm:...)".into()))
                }
            },
        };
        if model.is_empty() {
            return Err(bad("the model name is empty".into()));
        }
        let entry = entry_of(provider);
        let known = builtin(provider);
        let wire = match (entry.and_then(|e| e.wire.as_ref()), known) {
            (Some(w), _) => w.value,
            (None, Some(b)) => b.wire,
            (None, None) => {
                return Err(bad(format!(
                    "unknown provider {provider:?} (anthropic, openai, ollama, vllm, or a [providers.{provider}] table in the config file)"
                )))
            }
        };
        let (url_var, key_var) = (env_name(provider, "BASE_URL"), env_name(provider, "API_KEY"));
        let base_url = match env(&url_var).filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => match (entry.and_then(|e| e.base_url.as_ref()), known) {
                (Some(u), _) => u.value.clone(),
                (None, Some(b)) => b.default_url.to_string(),
                (None, None) => return Err(bad(format!("no base URL: set {url_var} or base_url in the config file"))),
            },
        };
        let base_url = base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(bad(format!("{url_var}={base_url:?} is not an http(s) URL")));
        }
        let (api_key, key_source) = match env(&key_var).filter(|k| !k.is_empty()) {
            Some(k) => (Some(k), key_var.clone()),
            None => match entry.and_then(|e| e.key.as_ref()) {
                Some(Located { value: KeySource::Env(var), origin }) => match env(var).filter(|k| !k.is_empty()) {
                    Some(k) => (Some(k), var.clone()),
                    None => return Err(from_file(origin.error(format!("{var} is not set")))),
                },
                Some(Located { value: KeySource::File(path), origin }) => {
                    let key = crate::config::read_key_file(path, origin).map_err(from_file)?;
                    (Some(key), path.display().to_string())
                }
                None => (None, key_var.clone()),
            },
        };
        if known.is_some_and(|b| b.key_required) && api_key.is_none() {
            return Err(bad(format!("{key_var} is not set")));
        }
        Ok(ProviderConfig {
            provider: provider.to_string(),
            wire,
            model,
            base_url,
            api_key,
            key_source,
            retry: RetryPolicy::default(),
            max_tokens: 8192,
        })
    }

    /// `provider:model`.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.provider, self.model)
    }
}

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The `--model` spec or the environment is wrong.
    #[error("{0}")]
    Config(String),
    /// The API refused the request (not retried): 400, 401, 403, 404, ...
    #[error("{provider} API error {status}: {message}{hint}")]
    Api {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's own message.
        message: String,
        /// What to check (e.g. the key variable on 401).
        hint: String,
    },
    /// Still failing after every retry.
    #[error("{provider}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Provider name.
        provider: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The stream broke or carried something we cannot read.
    #[error("{provider}: bad response: {detail}")]
    Protocol {
        /// Provider name.
        provider: String,
        /// What was wrong.
        detail: String,
    },
}

/// What the caller sees while a call streams.
pub trait Observer: Send {
    /// A piece of the model's text, as it arrives.
    fn text(&mut self, delta: &str);
    /// A one-line notice (a retry and why).
    fn notice(&mut self, line: &str);
}

/// One model call's input.
#[derive(Debug, Clone, Copy)]
pub struct ModelRequest<'a> {
    /// System prompt.
    pub system: &'a str,
    /// The conversation so far.
    pub turns: &'a [Turn],
    /// Tools offered.
    pub tools: &'a [ToolSpec],
}

/// A failure of one attempt, and whether another may succeed.
pub(crate) enum Attempt {
    /// Worth retrying, after at least `after` when the server said so.
    Retry { why: String, after: Option<Duration> },
    /// Final.
    Fatal(ProviderError),
}

/// A configured provider with its HTTP client.
#[derive(Debug, Clone)]
pub struct Provider {
    cfg: ProviderConfig,
    http: reqwest::Client,
}

impl Provider {
    /// A provider for `cfg`.
    pub fn new(cfg: ProviderConfig) -> Result<Provider, ProviderError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .user_agent(concat!("clawcage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Config(format!("HTTP client: {e}")))?;
        Ok(Provider { cfg, http })
    }

    /// Its configuration.
    pub fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// One model call, streamed to `obs`, retried on 429, 5xx and overload
    /// with exponential backoff (a server's `retry-after` is honoured).
    pub async fn complete(
        &self,
        req: ModelRequest<'_>,
        obs: &mut dyn Observer,
    ) -> Result<ModelResponse, ProviderError> {
        let policy = &self.cfg.retry;
        let mut last = String::new();
        for attempt in 0..policy.attempts.max(1) {
            let result = match self.cfg.wire {
                Wire::Anthropic => anthropic::call(&self.http, &self.cfg, req, obs).await,
                Wire::OpenAi => openai::call(&self.http, &self.cfg, req, obs).await,
            };
            match result {
                Ok(r) => return Ok(r),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry { why, after }) => {
                    last = why;
                    if attempt + 1 >= policy.attempts {
                        break;
                    }
                    let backoff = policy.base.saturating_mul(1u32 << attempt.min(16));
                    let wait = after.unwrap_or(backoff).min(policy.max);
                    obs.notice(&format!(
                        "{}: {last}; retrying in {:.1} s (attempt {} of {})",
                        self.cfg.provider,
                        wait.as_secs_f64(),
                        attempt + 2,
                        policy.attempts
                    ));
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(ProviderError::Exhausted { provider: self.cfg.provider.clone(), attempts: policy.attempts, last })
    }
}

/// Statuses worth retrying: rate limits, server errors, Anthropic's 529 overloaded.
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// `retry-after` (seconds, possibly fractional) or `retry-after-ms`.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 3600.0)));
    }
    get("retry-after").and_then(|v| v.parse::<f64>().ok()).map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)))
}

/// The provider's own message from an error body (`{"error":{"message":..}}`
/// in both APIs), else the body itself, cut short.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let msg = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message").or_else(|| v.get("message")).or_else(|| v.get("error")).and_then(|m| m.as_str())
    });
    let text = msg.map(str::to_string).unwrap_or_else(|| body.trim().to_string());
    let mut cut: String = text.chars().take(500).collect();
    if cut.is_empty() {
        cut = "(empty body)".into();
    }
    cut
}

/// Turn a non-success response into an [`Attempt`].
pub(crate) async fn failed_response(cfg: &ProviderConfig, resp: reqwest::Response) -> Attempt {
    let status = resp.status().as_u16();
    let after = retry_after(resp.headers());
    let body = resp.text().await.unwrap_or_default();
    let message = error_message(&body);
    if retryable(status) {
        return Attempt::Retry { why: format!("HTTP {status}: {message}"), after };
    }
    let hint = match status {
        401 | 403 => format!(" (check {})", cfg.key_source),
        404 => format!(" (check the model name {:?} and the base URL {})", cfg.model, cfg.base_url),
        _ => String::new(),
    };
    Attempt::Fatal(ProviderError::Api { provider: cfg.provider.clone(), status, message, hint })
}

/// A transport error: connection failures and broken streams are retried.
pub(crate) fn transport(e: reqwest::Error) -> Attempt {
    Attempt::Retry { why: format!("connection: {e}"), after: None }
}

/// A response we cannot read: final.
pub(crate) fn protocol(cfg: &ProviderConfig, detail: String) -> Attempt {
    Attempt::Fatal(ProviderError::Protocol { provider: cfg.provider.clone(), detail })
}

/// One streamed attempt, for either wire: send `rb`, turn a failed status
/// into an [`Attempt`], and hand each server-sent event of the body to
/// `on_event` until it returns `true` (the wire's end marker). `Ok(false)`:
/// the stream ended before that.
pub(crate) async fn stream_events(
    cfg: &ProviderConfig,
    rb: reqwest::RequestBuilder,
    mut on_event: impl FnMut(&sse::SseEvent) -> Result<bool, Attempt>,
) -> Result<bool, Attempt> {
    let resp = rb.send().await.map_err(transport)?;
    if !resp.status().is_success() {
        return Err(failed_response(cfg, resp).await);
    }
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::new();
    while let Some(chunk) = next_chunk(&mut stream).await? {
        for ev in parser.feed(&chunk).map_err(|d| protocol(cfg, d))? {
            if on_event(&ev)? {
                return Ok(true);
            }
        }
    }
    match parser.finish() {
        Some(ev) => on_event(&ev),
        None => Ok(false),
    }
}

/// How long a stream may go quiet before it counts as broken.
pub(crate) const IDLE: Duration = Duration::from_secs(300);

/// Next chunk of a streamed body, with the idle limit.
pub(crate) async fn next_chunk<S>(stream: &mut S) -> Result<Option<bytes::Bytes>, Attempt>
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    use futures_util::StreamExt;
    match tokio::time::timeout(IDLE, stream.next()).await {
        Err(_) => Err(Attempt::Retry { why: format!("no data for {} s", IDLE.as_secs()), after: None }),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(transport(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn specs_pick_wire_base_url_and_key() {
        let c = ProviderConfig::from_spec("anthropic:claude-x", &env(&[("ANTHROPIC_API_KEY", "k")])).unwrap();
        assert_eq!(
            (c.wire, c.base_url.as_str(), c.api_key.as_deref()),
            (Wire::Anthropic, "https://api.anthropic.com", Some("k"))
        );
        let c = ProviderConfig::from_spec("ollama:llama3", &env(&[])).unwrap();
        assert_eq!((c.wire, c.base_url.as_str(), c.api_key), (Wire::OpenAi, "http://127.0.0.1:11434/v1", None));
        let c = ProviderConfig::from_spec(
            "openai:gpt-4o",
            &env(&[("OPENAI_API_KEY", "k"), ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")]),
        )
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9/v1");
        assert!(!format!("{c:?}").contains("\"k\""), "the key never shows in Debug");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = |s: &str| ProviderConfig::from_spec(s, &env(&[])).unwrap_err().to_string();
        assert!(e("claude").contains("provider:model"));
        assert!(e("anthropic:claude-x").contains("ANTHROPIC_API_KEY is not set"));
        assert!(e("bard:x").contains("unknown provider"));
        assert!(e("openai:").contains("empty"));
    }

    #[test]
    fn error_bodies_yield_the_providers_message() {
        assert_eq!(
            error_message(r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#),
            "invalid x-api-key"
        );
        assert_eq!(error_message("plain text"), "plain text");
        assert_eq!(error_message(""), "(empty body)");
    }
}

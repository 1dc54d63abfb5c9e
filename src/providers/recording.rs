//! Record and replay: model answers kept as files so tests run without a network or a key.
//!
//! Each exchange is stored under the recordings folder as stable, pretty JSON, keyed by a
//! SHA-256 of the exact request (provider, model, messages, parameters): change the prompt
//! and the key changes. Files hold the request and the answer, never a key or header.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ChatRequest, ChatResponse, ProviderError};

/// Recordings larger than this are refused on replay: one model answer.
const MAX_RECORDING_BYTES: u64 = 16 * 1024 * 1024;

/// Whether calls go to the provider, are recorded, or come from recordings only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every call is live; nothing is written.
    #[default]
    Live,
    /// Calls are live and each answer is written.
    Record,
    /// Answers come from recordings only; a missing one is an error.
    Replay,
}

/// The recordings folder and the mode.
#[derive(Debug, Clone)]
pub struct Recordings {
    /// Live, record or replay.
    pub mode: Mode,
    /// The folder.
    pub dir: PathBuf,
}

/// The identity of one request.
#[derive(Debug, Clone)]
pub struct RequestKey {
    hash: String,
    folder: String,
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl RequestKey {
    /// The key of a chat request to `provider`.
    pub fn chat(provider: &str, request: &ChatRequest) -> RequestKey {
        let canonical =
            serde_json::json!({"kind": "chat", "provider": provider, "request": request});
        RequestKey {
            hash: sha256_hex(&canonical.to_string()),
            folder: format!("{}/{}", sanitize(provider), sanitize(&request.model)),
        }
    }

    /// The key of an embeddings request.
    pub fn embedding(provider: &str, model: &str, texts: &[String]) -> RequestKey {
        let canonical = serde_json::json!({"kind": "embedding", "provider": provider, "model": model, "input": texts});
        RequestKey {
            hash: sha256_hex(&canonical.to_string()),
            folder: format!("{}/{}", sanitize(provider), sanitize(model)),
        }
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.folder)
            .join(format!("{}.json", &self.hash[..24]))
    }
}

#[derive(Serialize, Deserialize)]
struct ChatRecording {
    request: ChatRequest,
    response: ChatResponse,
}

#[derive(Serialize, Deserialize)]
struct EmbeddingRecording {
    model: String,
    input: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

impl Recordings {
    /// No recording, no replay.
    pub fn live() -> Recordings {
        Recordings {
            mode: Mode::Live,
            dir: PathBuf::new(),
        }
    }

    fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &RequestKey,
        model: &str,
    ) -> Result<Option<T>, ProviderError> {
        if self.mode != Mode::Replay {
            return Ok(None);
        }
        let path = key.path(&self.dir);
        let text = match crate::files::read_regular_text(&path, MAX_RECORDING_BYTES) {
            Ok(text) => text,
            Err(err) if err.is_not_found() => {
                return Err(ProviderError::NoRecording {
                    model: model.to_owned(),
                    path: path.display().to_string(),
                });
            }
            Err(err) => {
                return Err(ProviderError::Recording {
                    path: path.display().to_string(),
                    message: err.to_string(),
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|err| ProviderError::Recording {
                path: path.display().to_string(),
                message: format!("not a valid recording ({err}); record it again with --record"),
            })
    }

    fn write<T: Serialize>(&self, key: &RequestKey, value: &T) -> Result<(), ProviderError> {
        if self.mode != Mode::Record {
            return Ok(());
        }
        let path = key.path(&self.dir);
        let failed = |message: String| ProviderError::Recording {
            path: path.display().to_string(),
            message,
        };
        let mut text = serde_json::to_string_pretty(value).map_err(|e| failed(e.to_string()))?;
        text.push('\n');
        crate::files::replace(&path, text.as_bytes()).map_err(|e| failed(e.to_string()))
    }

    /// The recorded answer to a chat request, in replay mode.
    pub fn replay_chat(&self, key: &RequestKey) -> Result<Option<ChatResponse>, ProviderError> {
        let model = key.folder.rsplit('/').next().unwrap_or_default().to_owned();
        Ok(self
            .read::<ChatRecording>(key, &model)?
            .map(|recording| ChatResponse {
                replayed: true,
                ..recording.response
            }))
    }

    /// Writes a chat answer, in record mode.
    pub fn record_chat(
        &self,
        key: &RequestKey,
        request: &ChatRequest,
        response: &ChatResponse,
    ) -> Result<(), ProviderError> {
        self.write(
            key,
            &ChatRecording {
                request: request.clone(),
                response: response.clone(),
            },
        )
    }

    /// The recorded embeddings, in replay mode.
    pub fn replay_embedding(
        &self,
        key: &RequestKey,
    ) -> Result<Option<Vec<Vec<f32>>>, ProviderError> {
        let model = key.folder.rsplit('/').next().unwrap_or_default().to_owned();
        Ok(self
            .read::<EmbeddingRecording>(key, &model)?
            .map(|r| r.embeddings))
    }

    /// Writes embeddings, in record mode.
    pub fn record_embedding(
        &self,
        key: &RequestKey,
        model: &str,
        texts: &[String],
        vectors: &[Vec<f32>],
    ) -> Result<(), ProviderError> {
        self.write(
            key,
            &EmbeddingRecording {
                model: model.to_owned(),
                input: texts.to_vec(),
                embeddings: vectors.to_vec(),
            },
        )
    }
}

//! `promptctl lsp`: a Language Server over stdio, working from unsaved buffers.
//!
//! One thread reads `Content-Length` framed JSON-RPC messages and queues them; the main
//! thread handles each in turn and writes the answers: diagnostics from [`crate::check`] as
//! the user types, completion, hover, go-to-definition and formatting (through
//! [`crate::format`], as `promptctl fmt`).
//!
//! A check of one file is a few milliseconds, but a file of runaway tests can take the
//! whole budget `check` gives a file (a second or two). So an edit replaced by a newer one
//! is not checked at all when the newer one is already queued, and a check under way is
//! cancelled (through [`crate::render::limits`]) as soon as the reader sees a newer edit of
//! the same document: diagnostics always describe the latest text, without waiting for
//! the stale ones.
//!
//! The framing is read here rather than by `lsp-server`'s stdio transport, because that
//! transport stops at the first message that is not valid JSON; a malformed message must
//! be answered with a JSON-RPC error instead (`-32700` parse error, `-32600` invalid
//! request), and the server goes on. `lsp-server` still gives the message types.
//!
//! Test cases run from the editor ([`runs`]): a code lens above each, its result a
//! diagnostic and a hover. A run goes to a thread of its own and reports back through the
//! same queue the reader fills, so nothing else waits for a model.
//!
//! This module is not a YAML language server: it knows prompt files and partials only.

mod completion;
mod definition;
mod diagnostics;
mod documents;
mod formatting;
mod hover;
mod runs;

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use lsp_server::{Message, Notification, Request, RequestId, Response};
use lsp_types::NumberOrString;
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use serde_json::Value;

use crate::config::Config;
use crate::repo::Partials;
use documents::{Cursor, Documents};

/// JSON-RPC and LSP error codes the server answers with.
pub mod codes {
    /// The message is not valid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON is not a valid request.
    pub const INVALID_REQUEST: i32 = -32600;
    /// The server does not know the method.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// The parameters do not fit the method.
    pub const INVALID_PARAMS: i32 = -32602;
    /// The server failed while handling the request.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// The request was valid but could not be carried out.
    pub const REQUEST_FAILED: i32 = -32803;
    /// A request came before `initialize`.
    pub const SERVER_NOT_INITIALIZED: i32 = -32002;
    /// The request was cancelled (a test run whose document changed).
    pub const REQUEST_CANCELLED: i32 = -32800;
}

/// Largest message body accepted (64 MiB); a larger `Content-Length` is a broken client.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The state of one session.
pub(crate) struct Server {
    /// Where the server was started, used when the client names no workspace.
    start: PathBuf,
    /// The project, once initialized.
    project: Option<Project>,
    /// The open buffers.
    documents: Documents,
    /// Whether `shutdown` was received.
    shut_down: bool,
    /// The test runs under way and their results.
    runs: runs::Runs,
    /// The diagnostics of `check` last published for each document.
    checked: HashMap<lsp_types::Url, Vec<lsp_types::Diagnostic>>,
    /// Where a run's thread sends its results: the main loop's queue.
    finished: mpsc::SyncSender<Incoming>,
    /// The document opened or changed last (what an argument-less "run all" runs).
    last_edited: Option<lsp_types::Url>,
}

/// The project the open files belong to.
pub(crate) struct Project {
    /// Its configuration.
    pub config: Config,
    /// The prompts folder, absolute.
    pub prompts_abs: PathBuf,
    /// The partials of the working tree as read at start-up, with open partial buffers
    /// laid over them.
    pub partials: Partials,
}

impl Project {
    fn load(root: &Path) -> Project {
        let config = Config::discover(root).unwrap_or_else(|_| Config {
            root: root.to_path_buf(),
            file: None,
            settings: crate::config::Settings::default(),
        });
        config.settings.render.apply();
        let prompts_abs = config.prompts_dir();
        // The walk and the reader every command uses: regular files only, reads bounded.
        let mut partials = std::collections::BTreeMap::new();
        for (relative, kind) in crate::repo::working_files(&prompts_abs).unwrap_or_default() {
            if kind == crate::repo::FileKind::Partial
                && let Ok(bytes) =
                    crate::repo::read_working_file(&prompts_abs.join(&relative), &relative)
                && let Ok(text) = String::from_utf8(bytes)
            {
                partials.insert(crate::repo::partial_name(&relative), text);
            }
        }
        Project {
            config,
            prompts_abs,
            partials: Arc::new(partials),
        }
    }

    /// The path of `file` relative to the prompts folder, when it lies inside it.
    pub fn relative(&self, file: &Path) -> Option<PathBuf> {
        // The buffer may not exist on disk yet: canonicalize its folder then.
        let canonical = file.canonicalize().ok();
        let in_canonical_parent = file
            .parent()
            .and_then(|parent| parent.canonicalize().ok())
            .zip(file.file_name())
            .map(|(parent, name)| parent.join(name));
        let candidates = [Some(file.to_path_buf()), canonical, in_canonical_parent];
        candidates.into_iter().flatten().find_map(|path| {
            path.strip_prefix(&self.prompts_abs)
                .ok()
                .map(Path::to_path_buf)
        })
    }
}

/// A message as the reader thread hands it over.
enum Incoming {
    /// A JSON value (not yet known to be a valid JSON-RPC message).
    Json(Value),
    /// A message that could not be read, and why (answered with a parse error).
    Unreadable(String),
    /// The end of the input.
    Eof,
    /// Reading failed.
    Failed(io::Error),
    /// A test run ended.
    Ran(runs::Finished),
}

/// The document whose diagnostics are being computed, and the flag that cancels them.
type InFlight = Arc<Mutex<Option<(String, Arc<AtomicBool>)>>>;

/// How many read messages may wait for the main thread.
const QUEUE: usize = 1024;

/// Runs the server over `input` and `output` until `exit` or the end of the input, and
/// returns the process exit code: 0 after `shutdown` then `exit`, 1 otherwise.
pub fn run(
    input: impl Read + Send + 'static,
    mut output: impl Write,
    start: &Path,
) -> io::Result<u8> {
    let in_flight: InFlight = Arc::default();
    let (sender, receiver) = mpsc::sync_channel(QUEUE);
    let mut server = Server {
        start: start.to_path_buf(),
        project: None,
        documents: Documents::default(),
        shut_down: false,
        runs: runs::Runs::default(),
        checked: HashMap::new(),
        finished: sender.clone(),
        last_edited: None,
    };
    let reader_in_flight = in_flight.clone();
    std::thread::spawn(move || read_messages(input, &sender, &reader_in_flight));
    let mut pending = VecDeque::new();
    loop {
        if pending.is_empty() {
            pending.push_back(receiver.recv().unwrap_or(Incoming::Eof));
        }
        pending.extend(receiver.try_iter());
        let Some(incoming) = pending.pop_front() else {
            continue;
        };
        let value = match incoming {
            Incoming::Eof => {
                server.runs.cancel_all();
                return Ok(1);
            }
            Incoming::Failed(err) => {
                server.runs.cancel_all();
                return Err(err);
            }
            Incoming::Ran(finished) => {
                for message in server.ran(finished) {
                    message.write(&mut output)?;
                }
                continue;
            }
            Incoming::Unreadable(reason) => {
                write_raw_error(&mut output, codes::PARSE_ERROR, &reason)?;
                continue;
            }
            Incoming::Json(value) => value,
        };
        let message = match parse_message(&value) {
            Ok(message) => message,
            Err(id) => {
                write_json(
                    &mut output,
                    &error_json(
                        id,
                        codes::INVALID_REQUEST,
                        "not a JSON-RPC request, response or notification",
                    ),
                )?;
                continue;
            }
        };
        let mut outgoing = Vec::new();
        match message {
            Message::Request(request) => {
                let id = request.id.clone();
                // A bug in one handler answers that request with an error; the session
                // goes on.
                let response = panic::catch_unwind(AssertUnwindSafe(|| server.request(request)))
                    .unwrap_or_else(|_| {
                        Some(error(
                            id,
                            codes::INTERNAL_ERROR,
                            "internal error (a bug in promptctl)",
                        ))
                    });
                // `None`: a test run answers when it ends.
                outgoing.extend(response.map(Message::from));
            }
            Message::Notification(notification) => {
                if notification.method == lsp_types::notification::Exit::METHOD {
                    server.runs.cancel_all();
                    return Ok(if server.shut_down { 0 } else { 1 });
                }
                let superseded = document_uri(&value)
                    .is_some_and(|uri| pending.iter().any(|later| edits(later, uri)));
                let handled = panic::catch_unwind(AssertUnwindSafe(|| {
                    let mut sent = Vec::new();
                    server.notification(notification, superseded, &in_flight, &mut sent);
                    sent
                }));
                outgoing.extend(handled.unwrap_or_default());
            }
            Message::Response(_) => {}
        }
        for message in outgoing {
            message.write(&mut output)?;
        }
    }
}

/// The reader thread: frames and parses every message, and cancels the diagnostics under
/// way when a newer edit of their document arrives.
fn read_messages(input: impl Read, sender: &mpsc::SyncSender<Incoming>, in_flight: &InFlight) {
    let mut input = io::BufReader::new(input);
    loop {
        let incoming = match read_frame(&mut input) {
            Ok(Frame::Eof) => Incoming::Eof,
            Err(err) => Incoming::Failed(err),
            Ok(Frame::Bad(reason)) => Incoming::Unreadable(reason),
            Ok(Frame::Body(body)) => match serde_json::from_slice::<Value>(&body) {
                Ok(value) => Incoming::Json(value),
                Err(err) => Incoming::Unreadable(format!("invalid JSON: {err}")),
            },
        };
        if let Ok(guard) = in_flight.lock()
            && let Some((uri, cancel)) = guard.as_ref()
            && edits(&incoming, uri)
        {
            cancel.store(true, Ordering::Relaxed);
        }
        let last = matches!(incoming, Incoming::Eof | Incoming::Failed(_));
        if sender.send(incoming).is_err() || last {
            return;
        }
    }
}

/// A JSON-RPC message, or the id to answer an invalid one with (`null` when it has no
/// usable id: LSP ids are 32-bit integers or strings, never `null`, fractions, objects,
/// arrays or booleans).
fn parse_message(value: &Value) -> Result<Message, Option<Value>> {
    let id = value.get("id");
    // LSP ids are integers (32 bits) or strings; anything else cannot be answered by id.
    let usable_id = id
        .filter(|id| id.is_string() || id.as_i64().is_some_and(|n| i32::try_from(n).is_ok()))
        .cloned();
    if id.is_some() && usable_id.is_none() {
        return Err(None);
    }
    serde_json::from_value::<Message>(value.clone()).map_err(|_| usable_id)
}

/// The document a `didOpen`, `didChange` or `didClose` notification is about.
fn document_uri(value: &Value) -> Option<&str> {
    use lsp_types::notification as n;
    let method = value.get("method")?.as_str()?;
    if ![
        n::DidOpenTextDocument::METHOD,
        n::DidChangeTextDocument::METHOD,
        n::DidCloseTextDocument::METHOD,
    ]
    .contains(&method)
    {
        return None;
    }
    value
        .get("params")?
        .get("textDocument")?
        .get("uri")?
        .as_str()
}

/// Whether a queued message replaces the text of document `uri`.
fn edits(incoming: &Incoming, uri: &str) -> bool {
    matches!(incoming, Incoming::Json(value) if document_uri(value) == Some(uri))
}

impl Server {
    /// The answer to a request; `None` for a test run, answered when it ends.
    fn request(&mut self, request: Request) -> Option<Response> {
        let id = request.id.clone();
        if self.shut_down {
            return Some(error(
                id,
                codes::INVALID_REQUEST,
                "the server is shutting down",
            ));
        }
        let method = request.method.as_str();
        if method == lsp_types::request::Initialize::METHOD {
            return Some(self.initialize(request));
        }
        let Some(project) = &self.project else {
            return Some(error(id, codes::SERVER_NOT_INITIALIZED, "initialize first"));
        };
        use lsp_types::request as r;
        let result = match method {
            r::Shutdown::METHOD => {
                self.shut_down = true;
                self.runs.cancel_all();
                Ok(Value::Null)
            }
            r::Completion::METHOD => params(request).map(|p: lsp_types::CompletionParams| {
                at(&self.documents, &p.text_document_position, |cursor| {
                    completion::complete(project, cursor)
                })
            }),
            r::HoverRequest::METHOD => params(request).map(|p: lsp_types::HoverParams| {
                let position = &p.text_document_position_params;
                match self
                    .runs
                    .hover(&position.text_document.uri, position.position)
                {
                    Some(result) => to_value(result),
                    None => at(&self.documents, position, |cursor| {
                        hover::hover(project, cursor)
                    }),
                }
            }),
            r::CodeLensRequest::METHOD => params(request).map(|p: lsp_types::CodeLensParams| {
                let uri = &p.text_document.uri;
                let in_prompts = uri
                    .to_file_path()
                    .ok()
                    .and_then(|file| project.relative(&file))
                    .is_some();
                match self.documents.get(uri) {
                    Some(text) if in_prompts => to_value(runs::code_lenses(uri, text)),
                    _ => Value::Null,
                }
            }),
            r::ExecuteCommand::METHOD => {
                return self.execute(request);
            }
            r::GotoDefinition::METHOD => {
                params(request).map(|p: lsp_types::GotoDefinitionParams| {
                    at(
                        &self.documents,
                        &p.text_document_position_params,
                        |cursor| definition::definition(project, cursor),
                    )
                })
            }
            r::Formatting::METHOD => params(request).and_then(|p| {
                formatting::format(project, &self.documents, &p)
                    .map(to_value)
                    .map_err(|message| (codes::REQUEST_FAILED, message))
            }),
            _ => Err((
                codes::METHOD_NOT_FOUND,
                format!("unknown method `{method}`"),
            )),
        };
        Some(answer(id, result))
    }

    /// Starts a test run (`workspace/executeCommand`); the answer comes when it ends.
    fn execute(&mut self, request: Request) -> Option<Response> {
        let id = request.id.clone();
        let started = params(request).and_then(|p: lsp_types::ExecuteCommandParams| {
            let project = self
                .project
                .as_ref()
                .ok_or((codes::SERVER_NOT_INITIALIZED, "initialize first".to_owned()))?;
            let target = runs::target(&p.command, &p.arguments, self.last_edited.as_ref())
                .map_err(|message| (codes::INVALID_PARAMS, message))?;
            let text = self
                .documents
                .get(&target.uri)
                .ok_or((codes::INVALID_PARAMS, "the document is not open".to_owned()))?;
            let finished = self.finished.clone();
            self.runs
                .start(project, id.clone(), target, text, move |done| {
                    let _ = finished.send(Incoming::Ran(done));
                })
                .map_err(|message| (codes::REQUEST_FAILED, message))
        });
        match started {
            Ok(()) => None,
            Err((code, message)) => Some(error(id, code, &message)),
        }
    }

    /// A test run ended: its answer, and the diagnostics of its document with its results.
    fn ran(&mut self, finished: runs::Finished) -> Vec<Message> {
        let (id, uri) = (finished.request.clone(), finished.uri.clone());
        let result = self.runs.finish(finished);
        let mut messages = Vec::new();
        if result.is_ok() && !self.shut_down {
            messages.push(self.publish_with_runs(uri));
        }
        messages.push(answer(id, result).into());
        messages
    }

    /// The diagnostics of `uri`: `check`'s as last computed, and its tests' results.
    fn publish_with_runs(&self, uri: lsp_types::Url) -> Message {
        let mut diagnostics = self.checked.get(&uri).cloned().unwrap_or_default();
        if let Some(text) = self.documents.get(&uri) {
            diagnostics.extend(self.runs.diagnostics(&uri, text));
        }
        publish(uri, diagnostics)
    }

    fn initialize(&mut self, request: Request) -> Response {
        if self.project.is_some() {
            return error(request.id, codes::INVALID_REQUEST, "already initialized");
        }
        let params: lsp_types::InitializeParams = match serde_json::from_value(request.params) {
            Ok(params) => params,
            Err(err) => return error(request.id, codes::INVALID_PARAMS, &err.to_string()),
        };
        #[allow(deprecated)] // root_uri: clients still send it more often than folders.
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|folders| folders.first())
            .and_then(|folder| folder.uri.to_file_path().ok())
            .or_else(|| {
                params
                    .root_uri
                    .as_ref()
                    .and_then(|uri| uri.to_file_path().ok())
            })
            .unwrap_or_else(|| self.start.clone());
        self.project = Some(Project::load(&root));
        let result = lsp_types::InitializeResult {
            capabilities: capabilities(),
            server_info: Some(lsp_types::ServerInfo {
                name: "promptctl".to_owned(),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            }),
        };
        Response::new_ok(request.id, to_value(result))
    }

    /// Applies a notification; a document change publishes the document's diagnostics
    /// unless a newer change of it is already queued (`superseded`) or arrives meanwhile.
    fn notification(
        &mut self,
        notification: Notification,
        superseded: bool,
        in_flight: &InFlight,
        outgoing: &mut Vec<Message>,
    ) {
        use lsp_types::notification as n;
        if self.shut_down {
            return;
        }
        if self.project.is_none() {
            return;
        }
        if notification.method == n::Cancel::METHOD {
            if let Ok(p) = serde_json::from_value::<lsp_types::CancelParams>(notification.params) {
                self.runs.cancel(&match p.id {
                    NumberOrString::Number(n) => RequestId::from(n),
                    NumberOrString::String(s) => RequestId::from(s),
                });
            }
            return;
        }
        let changed = match notification.method.as_str() {
            n::DidOpenTextDocument::METHOD => {
                serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(notification.params)
                    .ok()
                    .map(|p| {
                        let uri = p.text_document.uri;
                        self.documents.open(uri.clone(), p.text_document.text);
                        uri
                    })
            }
            n::DidChangeTextDocument::METHOD => serde_json::from_value::<
                lsp_types::DidChangeTextDocumentParams,
            >(notification.params)
            .ok()
            .map(|p| {
                let uri = p.text_document.uri;
                self.documents.change(&uri, p.content_changes);
                uri
            }),
            n::DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(
                    notification.params,
                ) {
                    self.documents.close(&p.text_document.uri);
                    self.runs.changed(&p.text_document.uri);
                    self.checked.remove(&p.text_document.uri);
                    if self.last_edited.as_ref() == Some(&p.text_document.uri) {
                        self.last_edited = None;
                    }
                    outgoing.push(publish(p.text_document.uri, Vec::new()));
                }
                None
            }
            _ => None,
        };
        let Some(uri) = changed else { return };
        // The buffer's runs describe text that is gone.
        self.runs.changed(&uri);
        let is_prompt = |project: &Project| {
            uri.to_file_path()
                .ok()
                .and_then(|file| project.relative(&file))
                .is_some_and(|relative| {
                    crate::repo::FileKind::of(&relative) == Some(crate::repo::FileKind::Prompt)
                })
        };
        if self.project.as_ref().is_some_and(is_prompt) {
            self.last_edited = Some(uri.clone());
        }
        if superseded {
            return;
        }
        let Some(project) = &mut self.project else {
            return;
        };
        let Some(text) = self.documents.get(&uri) else {
            return;
        };
        let cancel = Arc::new(AtomicBool::new(false));
        if let Ok(mut guard) = in_flight.lock() {
            *guard = Some((uri.to_string(), cancel.clone()));
        }
        let mut found = Vec::new();
        let Ok(file) = uri.to_file_path() else { return };
        let is_partial = project.relative(&file).is_some_and(|relative| {
            crate::repo::FileKind::of(&relative) == Some(crate::repo::FileKind::Partial)
        });
        if is_partial && let Some(relative) = project.relative(&file) {
            let mut partials = (*project.partials).clone();
            partials.insert(crate::repo::partial_name(&relative), text.to_owned());
            project.partials = Arc::new(partials);
            // The open prompts may include it: check them again, and forget their runs
            // (their answers came from the partial's old text).
            for other in self.documents.iter().map(|(uri, _)| uri) {
                self.runs.changed(other);
            }
            for (other, other_text) in self.documents.iter() {
                if *other != uri
                    && let Ok(other_file) = other.to_file_path()
                {
                    let diagnostics =
                        diagnostics::for_document(project, &other_file, other_text, &cancel);
                    found.push((other.clone(), diagnostics));
                }
            }
        }
        let diagnostics = diagnostics::for_document(project, &file, text, &cancel);
        found.push((uri, diagnostics));
        if let Ok(mut guard) = in_flight.lock() {
            *guard = None;
        }
        // Cancelled: a newer edit is queued and publishes instead.
        if !cancel.load(Ordering::Relaxed) {
            for (uri, diagnostics) in found {
                self.checked.insert(uri.clone(), diagnostics);
                outgoing.push(self.publish_with_runs(uri));
            }
        }
    }
}

fn publish(uri: lsp_types::Url, diagnostics: Vec<lsp_types::Diagnostic>) -> Message {
    Notification::new(
        lsp_types::notification::PublishDiagnostics::METHOD.to_owned(),
        lsp_types::PublishDiagnosticsParams {
            uri,
            diagnostics,
            version: None,
        },
    )
    .into()
}

/// What the server offers.
fn capabilities() -> lsp_types::ServerCapabilities {
    use lsp_types::*;
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(
                ["{", " ", "\"", "'", "/", ":"]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            ),
            ..CompletionOptions::default()
        }),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_lens_provider: Some(CodeLensOptions {
            resolve_provider: Some(false),
        }),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: vec![runs::RUN_TEST.to_owned(), runs::RUN_ALL.to_owned()],
            ..ExecuteCommandOptions::default()
        }),
        ..ServerCapabilities::default()
    }
}

fn params<P: serde::de::DeserializeOwned>(request: Request) -> Result<P, (i32, String)> {
    serde_json::from_value(request.params).map_err(|err| {
        (
            codes::INVALID_PARAMS,
            format!("invalid parameters for `{}`: {err}", request.method),
        )
    })
}

/// The answer of `handler` at the position a request names: `null` when the document is
/// not open or has no such line, or the handler has nothing to say there.
fn at<R: serde::Serialize>(
    documents: &Documents,
    position: &lsp_types::TextDocumentPositionParams,
    handler: impl FnOnce(&Cursor<'_>) -> Option<R>,
) -> Value {
    to_value(documents.at(position).and_then(|cursor| handler(&cursor)))
}

fn to_value(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The response carrying a handler's result or error.
fn answer(id: RequestId, result: Result<Value, (i32, String)>) -> Response {
    match result {
        Ok(value) => Response::new_ok(id, value),
        Err((code, message)) => error(id, code, &message),
    }
}

fn error(id: RequestId, code: i32, message: &str) -> Response {
    Response::new_err(id, code, message.to_owned())
}

/// An error response built by hand: `lsp-server` cannot express the `null` id JSON-RPC
/// requires when the request's id could not be read.
fn error_json(id: Option<Value>, code: i32, message: &str) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    })
}

fn write_raw_error(output: &mut impl Write, code: i32, message: &str) -> io::Result<()> {
    write_json(output, &error_json(None, code, message))
}

fn write_json(output: &mut impl Write, value: &Value) -> io::Result<()> {
    let text = value.to_string();
    write!(output, "Content-Length: {}\r\n\r\n{text}", text.len())?;
    output.flush()
}

/// One framed message, or why it could not be read.
enum Frame {
    Body(Vec<u8>),
    Bad(String),
    Eof,
}

/// Reads one `Content-Length` framed message. A bad header is reported and the headers up
/// to the next blank line skipped, so one broken message does not end the session.
fn read_frame(input: &mut impl BufRead) -> io::Result<Frame> {
    let mut length: Option<usize> = None;
    let mut bad: Option<String> = None;
    let mut saw_header = false;
    loop {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(Frame::Eof);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if !saw_header {
                continue;
            }
            break;
        }
        saw_header = true;
        match text.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("content-length") => {
                match value.trim().parse::<usize>() {
                    Ok(n) if n <= MAX_BODY => length = Some(n),
                    _ => bad = Some(format!("bad Content-Length `{}`", value.trim())),
                }
            }
            Some(_) => {}
            None => bad = Some(format!("malformed header `{text}`")),
        }
    }
    if let Some(reason) = bad {
        return Ok(Frame::Bad(reason));
    }
    let Some(length) = length else {
        return Ok(Frame::Bad("missing Content-Length header".to_owned()));
    };
    let mut body = vec![0; length];
    match input.read_exact(&mut body) {
        Ok(()) => Ok(Frame::Body(body)),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(Frame::Eof),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    fn responses(output: &[u8]) -> Vec<Value> {
        let mut input = output;
        let mut found = Vec::new();
        while let Ok(Frame::Body(body)) = read_frame(&mut input) {
            found.push(serde_json::from_slice(&body).expect("JSON"));
        }
        found
    }

    #[test]
    fn malformed_messages_get_errors_and_the_session_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = [
            frame("{not json"),
            frame(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#),
            frame(r#"{"jsonrpc":"2.0","id":2,"method":"nope/nope"}"#),
            frame(r#"{"jsonrpc":"2.0","id":3,"method":"textDocument/hover","params":42}"#),
            frame(r#"[1,2]"#),
            "Content-Length: abc\r\n\r\n".to_owned(),
            frame(r#"{"jsonrpc":"2.0","id":4,"method":"shutdown"}"#),
            frame(r#"{"jsonrpc":"2.0","id":5,"method":"shutdown"}"#),
            frame(r#"{"jsonrpc":"2.0","method":"exit"}"#),
        ]
        .concat();
        let mut output = Vec::new();
        let code = run(io::Cursor::new(input), &mut output, dir.path()).expect("runs");
        assert_eq!(code, 0);
        let codes: Vec<Option<i64>> = responses(&output)
            .iter()
            .map(|r| r["error"]["code"].as_i64())
            .collect();
        assert_eq!(
            codes,
            [
                Some(-32700),
                None,
                Some(-32601),
                Some(-32602),
                Some(-32600),
                Some(-32700),
                None,
                Some(-32600)
            ]
        );
    }

    #[test]
    fn exit_without_shutdown_is_code_1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = frame(r#"{"jsonrpc":"2.0","method":"exit"}"#);
        let code = run(io::Cursor::new(input), Vec::new(), dir.path()).expect("runs");
        assert_eq!(code, 1);
    }
}

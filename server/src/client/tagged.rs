//! Client protocol 4, the client's side: one stream per connection carries every request
//! of the client, each with a tag; answers come back on it in the order they complete and
//! find their caller by tag.
//!
//! ```text
//!  caller ─▶ TaggedStream::call ─▶ waiting[tag] = oneshot ─▶ writer ─▶ stream
//!  caller ◀── oneshot ◀── waiting.remove(tag) ◀── reader ◀── TaggedReply* ◀── stream
//! ```
//!
//! A failed stream answers every caller waiting on it with its error and refuses new
//! calls; the client then opens a new one (on a new connection if the old one closed).

use crate::transport::frame::{self, FrameError};
use crate::wire::{Answer, ClientFrame, TaggedReply, TaggedRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Why a call on the stream got no answer.
#[derive(Debug)]
pub(super) enum CallError {
    /// The request could not be encoded (over the frame limit).
    Encode(FrameError),
    /// The replica's answer could not be decoded: the outcome is unknown.
    Decode(FrameError),
    /// The stream or connection failed: the outcome is unknown.
    Broken(String),
}

/// Callers waiting for answers, by tag; `closed` once the stream failed or ended.
#[derive(Default)]
struct Waiting {
    callers: HashMap<u64, oneshot::Sender<Result<Answer, CallError>>>,
    closed: Option<String>,
}

/// One open protocol 4 stream and the task that drives it.
pub(super) struct TaggedStream {
    requests: mpsc::UnboundedSender<Vec<u8>>,
    waiting: Arc<Mutex<Waiting>>,
    next_tag: AtomicU64,
    max_frame_bytes: usize,
}

impl TaggedStream {
    /// Open a stream on `connection` and start its task.
    pub(super) async fn open(
        connection: &quinn::Connection,
        max_frame_bytes: usize,
    ) -> Result<Self, quinn::ConnectionError> {
        let (send, recv) = connection.open_bi().await?;
        let (requests, outgoing) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        tokio::spawn(drive(
            send,
            recv,
            outgoing,
            Arc::clone(&waiting),
            max_frame_bytes,
        ));
        Ok(Self {
            requests,
            waiting,
            next_tag: AtomicU64::new(0),
            max_frame_bytes,
        })
    }

    /// Whether the stream failed or ended (a new call would be refused): its task marks
    /// it before it stops.
    pub(super) fn is_closed(&self) -> bool {
        lock(&self.waiting).closed.is_some()
    }

    /// Send `frame` and wait for its answer. A caller that stops waiting (a timeout)
    /// leaves its entry until the answer comes or the stream closes.
    pub(super) async fn call(&self, frame: ClientFrame) -> Result<Answer, CallError> {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let bytes = frame::encode(&TaggedRequest { tag, frame }, self.max_frame_bytes)
            .map_err(CallError::Encode)?;
        let (caller, answer) = oneshot::channel();
        {
            let mut waiting = lock(&self.waiting);
            if let Some(reason) = &waiting.closed {
                return Err(CallError::Broken(reason.clone()));
            }
            waiting.callers.insert(tag, caller);
        }
        if self.requests.send(bytes).is_err() {
            lock(&self.waiting).callers.remove(&tag);
            return Err(CallError::Broken("the stream's task ended".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(CallError::Broken("the stream's task ended".into())))
    }
}

fn lock(waiting: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    waiting.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write requests and read answers until either side fails or the client drops the
/// stream; then answer every waiting caller with the reason.
async fn drive(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    waiting: Arc<Mutex<Waiting>>,
    max_frame_bytes: usize,
) {
    let reason = tokio::select! {
        reason = write_requests(&mut send, &mut outgoing) => reason,
        reason = read_answers(&mut recv, &waiting, max_frame_bytes) => reason,
    };
    let callers = {
        let mut waiting = lock(&waiting);
        waiting.closed = Some(reason.clone());
        std::mem::take(&mut waiting.callers)
    };
    for caller in callers.into_values() {
        let _ = caller.send(Err(CallError::Broken(reason.clone())));
    }
    let _ = send.finish();
}

/// Write each request as it comes; the reason the stream stops.
async fn write_requests(
    send: &mut quinn::SendStream,
    outgoing: &mut mpsc::UnboundedReceiver<Vec<u8>>,
) -> String {
    while let Some(bytes) = outgoing.recv().await {
        if let Err(e) = send.write_all(&bytes).await {
            return e.to_string();
        }
    }
    "the client closed the stream".into()
}

/// Hand each answer to its caller; the reason the stream stops.
async fn read_answers(
    recv: &mut quinn::RecvStream,
    waiting: &Mutex<Waiting>,
    max_frame_bytes: usize,
) -> String {
    loop {
        let reply = match frame::read::<TaggedReply, _>(recv, max_frame_bytes).await {
            Ok(Some(reply)) => reply,
            Ok(None) => return "the replica closed the stream".into(),
            Err(FrameError::Io(e)) => return e.to_string(),
            Err(e) => {
                let reason = format!("bad answer: {e}");
                // The stream is out of step: every caller's outcome is unknown. The one
                // caller this answer was for cannot be told apart, so all hear why.
                let callers = std::mem::take(&mut lock(waiting).callers);
                for caller in callers.into_values() {
                    let _ =
                        caller.send(Err(CallError::Decode(FrameError::Malformed(e.to_string()))));
                }
                return reason;
            }
        };
        if let Some(caller) = lock(waiting).callers.remove(&reply.tag) {
            let _ = caller.send(Ok(reply.answer));
        }
    }
}

#[cfg(test)]
#[path = "tagged_test.rs"]
mod tests;

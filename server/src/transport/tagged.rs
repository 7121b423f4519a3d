//! Client protocol 4 (`meridian-client/4`), the replica's side: a client stream carries
//! any number of tagged requests, each answered on the same stream once its answer is
//! ready, in the order answers complete.
//!
//! ```text
//!  recv: TaggedRequest* ─▶ reader ─▶ Inbound::{Client, Admin}{reply} ─▶ node
//!                            └─ PendingAnswer{tag, reply receiver} ─▶ writer
//!  send: ◀── TaggedReply* ◀── writer (whichever answer is ready first)
//! ```
//!
//! Reader and writer are two futures of one task: a stream costs one task, a request a
//! oneshot channel, where protocol 3 costs a QUIC stream and a task per request. The
//! writer finishes the stream once the client finished its side and every answer is
//! written. A malformed request closes the connection, as on any client stream.

use crate::transport::endpoint::{client_read_failed, oversized_refusal};
use crate::transport::frame::{self, FrameError};
use crate::transport::link::{bump, Inbound, Shared};
use crate::wire::{Answer, ClientFrame, ReplyFrame, TaggedReply, TaggedRequest};
use crate::{admin::AdminReplyFrame, tls};
use futures_util::stream::{FuturesUnordered, StreamExt};
use quinn::{Connection, VarInt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// Serve one client protocol 4 stream to its end.
pub(super) async fn serve(
    shared: Arc<Shared>,
    conn: Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let (asked, mut due) = mpsc::unbounded_channel();
    tokio::join!(
        read_requests(&shared, &conn, &mut recv, asked),
        write_answers(shared.max_frame_bytes, &mut send, &mut due),
    );
}

/// Hand every request on `recv` to the node, and its pending answer to the writer.
async fn read_requests(
    shared: &Shared,
    conn: &Connection,
    recv: &mut quinn::RecvStream,
    asked: mpsc::UnboundedSender<PendingAnswer>,
) {
    loop {
        let request = match frame::read::<TaggedRequest, _>(recv, shared.max_frame_bytes).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => return client_read_failed(shared, conn, e),
        };
        bump(&shared.stats.client_requests);
        let tag = request.tag;
        let (pending, inbound) = match request.frame {
            ClientFrame::Request(frame) => {
                let (reply, answer) = oneshot::channel();
                (
                    PendingAnswer::Reply { tag, answer },
                    Inbound::Client { frame, reply },
                )
            }
            ClientFrame::Admin(frame) => {
                let operator = tls::peer_chain(conn).is_some_and(|chain| tls::is_operator(&chain));
                let (reply, answer) = oneshot::channel();
                (
                    PendingAnswer::Admin { tag, answer },
                    Inbound::Admin {
                        frame,
                        operator,
                        reply,
                    },
                )
            }
        };
        // A request the node did not take drops its reply sender: it is answered
        // `Dropped`, as one the node let go of.
        shared.hand_in(inbound).await;
        if asked.send(pending).is_err() {
            // The writer is gone (the client stopped reading): nobody hears answers.
            return;
        }
    }
}

/// Write each answer as it becomes ready, until the reader is done and every answer is
/// written; then finish the stream.
async fn write_answers(
    max_frame_bytes: usize,
    send: &mut quinn::SendStream,
    due: &mut mpsc::UnboundedReceiver<PendingAnswer>,
) {
    let mut pending = FuturesUnordered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            next = due.recv(), if reading => match next {
                Some(answer) => pending.push(answer),
                None => reading = false,
            },
            Some((tag, answer)) = pending.next(), if !pending.is_empty() => {
                let Ok(bytes) = encode_tagged(tag, answer, max_frame_bytes) else {
                    // Only an admin answer over the limit gets here: the stream cannot
                    // carry it, and skipping it would leave its caller waiting.
                    let _ = send.reset(VarInt::from_u32(0));
                    return;
                };
                if send.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            else => break,
        }
    }
    let _ = send.finish();
}

/// `answer` as a frame; a key-value reply over the frame limit becomes a `Rejected`
/// reply saying so (as on protocol 3).
fn encode_tagged(tag: u64, answer: Answer, max_bytes: usize) -> Result<Vec<u8>, FrameError> {
    let tagged = TaggedReply { tag, answer };
    match frame::encode(&tagged, max_bytes) {
        Err(FrameError::Oversized { len, max }) => match tagged.answer {
            Answer::Reply(reply) => frame::encode(
                &TaggedReply {
                    tag,
                    answer: Answer::Reply(oversized_refusal(&reply, len, max)),
                },
                max_bytes,
            ),
            _ => Err(FrameError::Oversized { len, max }),
        },
        other => other,
    }
}

/// An answer the node owes: resolves to its tag and the answer, `Dropped` if the node
/// let the request go.
enum PendingAnswer {
    Reply {
        tag: u64,
        answer: oneshot::Receiver<ReplyFrame>,
    },
    Admin {
        tag: u64,
        answer: oneshot::Receiver<AdminReplyFrame>,
    },
}

impl Future for PendingAnswer {
    type Output = (u64, Answer);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            PendingAnswer::Reply { tag, answer } => Pin::new(answer)
                .poll(cx)
                .map(|reply| (*tag, reply.map_or(Answer::Dropped, Answer::Reply))),
            PendingAnswer::Admin { tag, answer } => Pin::new(answer)
                .poll(cx)
                .map(|reply| (*tag, reply.map_or(Answer::Dropped, Answer::Admin))),
        }
    }
}

#[cfg(test)]
#[path = "tagged_test.rs"]
mod tests;

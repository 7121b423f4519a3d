//! Asking a replica for a membership change and waiting for its answer: what `meridian
//! cluster add` / `cluster remove` and the bench's `--reconfigure` share.

use crate::admin::{AdminError, AdminRequest, AdminResponse, KeyspaceChange};
use crate::client::{Client, ClientError, ClientOptions};
use crate::tls::TlsIdentity;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a membership change may take (a learner's catch-up included).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a replica gave no per-keyspace answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// It could not be reached, or the connection failed before it answered: another
    /// replica may be asked instead.
    #[error("{what} replica {addr}: {source}")]
    Unreachable {
        /// The replica.
        addr: SocketAddr,
        /// "connecting to" or "asking".
        what: &'static str,
        /// The client's error.
        source: ClientError,
    },
    /// It refused the request.
    #[error("replica {addr} refused: {source}")]
    Refused {
        /// The replica.
        addr: SocketAddr,
        /// Its reason.
        source: AdminError,
    },
    /// It answered something other than a membership change.
    #[error("replica {addr} answered another request")]
    Unexpected {
        /// The replica.
        addr: SocketAddr,
    },
}

/// `request` (a `MemberAdd` or `MemberRemove` whose own timeout is at most
/// [`CHANGE_TIMEOUT`]) to the replica at `addr`; its answer per keyspace.
pub async fn ask(
    addr: SocketAddr,
    tls: &TlsIdentity,
    request: &AdminRequest,
) -> Result<Vec<KeyspaceChange>, AskError> {
    let unreachable = |what, source| AskError::Unreachable { addr, what, source };
    let options = ClientOptions {
        timeout: CHANGE_TIMEOUT + Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let client = Client::connect_with(addr, tls, options)
        .await
        .map_err(|e| unreachable("connecting to", e))?;
    let answer = client.admin(request).await;
    client.close().await;
    match answer.map_err(|e| unreachable("asking", e))? {
        Ok(AdminResponse::MemberChange(changes)) => Ok(changes),
        Ok(_) => Err(AskError::Unexpected { addr }),
        Err(source) => Err(AskError::Refused { addr, source }),
    }
}

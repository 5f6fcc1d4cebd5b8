//! [`ReplyRoute`]: how a reply reaches its caller, back the way its request came (see
//! [`Origin`]): locally into the core, or on the connection the request arrived on.

use std::sync::{Arc, Weak};

use moonpool_core::{CodecError, UID};

use super::core::Core;
use crate::connection::{ConnectionShared, Origin};
use crate::protocol;

/// How a reply reaches its caller.
pub(crate) enum ReplyRoute {
    /// The caller is this transport.
    Local(Weak<Core>),
    /// Back on the connection the request arrived on. Held strongly (it is small once closed:
    /// a closed connection drops the reply and counts it).
    Connection(Arc<ConnectionShared>),
}

impl ReplyRoute {
    /// Sends a reply payload to `token`; false if it could not be handed over.
    pub(crate) fn send(&self, token: UID, payload: Vec<u8>) -> bool {
        match self {
            ReplyRoute::Local(core) => core
                .upgrade()
                .is_some_and(|core| core.deliver(token, &payload, &Origin::Local)),
            ReplyRoute::Connection(conn) => conn.send(token, &payload),
        }
    }

    /// Sends a reply whose payload is `prefix` followed by what `body` writes (run straight
    /// into the connection's buffer when it can be). A body that fails to encode is answered
    /// with a serialization error reply.
    pub(crate) fn send_encoded(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
    ) -> bool {
        match self {
            ReplyRoute::Local(_) => {
                let mut payload = prefix.to_vec();
                match body(&mut payload) {
                    Ok(()) => self.send(token, payload),
                    Err(error) => self.send(
                        token,
                        protocol::serialization_error_reply(error.to_string()),
                    ),
                }
            }
            ReplyRoute::Connection(conn) => conn.send_encoded(token, prefix, body),
        }
    }
}

impl ReplyRoute {
    /// [`send_encoded`](Self::send_encoded) for a route counted by [`back`](Self::back), which
    /// it settles (no [`settle`](Self::settle) after it).
    pub(crate) fn answer_encoded(
        &self,
        token: UID,
        prefix: &[u8],
        body: &mut dyn FnMut(&mut Vec<u8>) -> Result<(), CodecError>,
    ) -> bool {
        match self {
            ReplyRoute::Local(_) => self.send_encoded(token, prefix, body),
            ReplyRoute::Connection(conn) => conn.answer_encoded(token, prefix, body),
        }
    }

    /// The route back to where a request came from; when `counted`, the connection counts the
    /// promise as outstanding until the route is [settled](ReplyRoute::settle) or
    /// [answered](ReplyRoute::answer_encoded).
    pub(crate) fn back(origin: &Origin, core: &Weak<Core>, counted: bool) -> ReplyRoute {
        match origin {
            Origin::Local => ReplyRoute::Local(core.clone()),
            Origin::Connection(conn) => {
                if counted {
                    conn.promise_opened();
                }
                ReplyRoute::Connection(Arc::clone(conn))
            }
        }
    }

    /// Ends the count taken by [`back`](Self::back) with `counted`.
    pub(crate) fn settle(&self) {
        if let ReplyRoute::Connection(conn) = self {
            conn.promise_settled();
        }
    }
}

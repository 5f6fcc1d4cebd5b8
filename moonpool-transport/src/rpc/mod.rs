//! Typed RPC: [`RequestStream`] and [`ReplyPromise`] on the server side, [`RequestClient`] and
//! [`ReplyFuture`] on the calling side.
//!
//! Floor 4, the top of the transport with the typed [queue](crate::queue) beneath it and the
//! [`NetTransport`](crate::NetTransport) façade above: requests and replies are encoded with the
//! transport's codec, registered and sent through the dispatch floor. Nothing below knows these
//! types.
//!
//! Inside: `client` ([`RequestClient`], [`ReplyFuture`]) → `server` ([`RequestStream`],
//! [`ReplyPromise`]; a stream makes clients of itself).

mod client;
mod server;

pub use self::client::{ReplyFuture, RequestClient};
pub use self::server::{ReplyPromise, RequestStream};

pub(crate) use self::client::{CallMode, CallShared, ErasedCodec, call, send};
pub(crate) use self::server::RequestReceiver;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::PendingRequest;

    fn assert_send<T: Send>() {}

    #[test]
    fn test_user_facing_types_are_send() {
        assert_send::<RequestClient<u32, u32>>();
        assert_send::<ReplyFuture<u32>>();
        assert_send::<ReplyPromise<u32>>();
        assert_send::<RequestStream<u32, u32>>();
        assert_send::<PendingRequest>();
    }
}

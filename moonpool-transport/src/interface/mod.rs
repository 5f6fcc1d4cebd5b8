//! Typed interfaces: what the [`#[service]`](crate::service) attribute generates code against.
//!
//! Floor 5, on top of the [`NetTransport`](crate::NetTransport) façade: a service is a set of
//! methods, each a [`RequestStream`](crate::RequestStream) at its own endpoint, served by a task
//! per method; a client is data (the service's base endpoint) that makes calls through whichever
//! transport the caller holds. Nothing below this floor knows these types.
//!
//! - The calling side: [`Call`] (a method whose reply is a value) and [`FallibleCall`] (a method
//!   declared `-> Result<T, E>`), each offering the four delivery modes of
//!   [`RequestClient`](crate::RequestClient); a fallible call ends with [`CallError`], which keeps
//!   the service's own `E` apart from the transport's [`ReplyError`](crate::ReplyError).
//! - The serving side: [`Serving`] (the running methods of one service; dropping it stops them),
//!   [`no_reply`] (a handler that ends without answering), and the builder the generated code
//!   uses (hidden).
//! - Tokens: [`method_token`] derives method `i`'s token from the service's base token and the
//!   interface id, so a client of one service pointed at a server of another finds nothing
//!   (`EndpointNotFound`) instead of calling the wrong method.
//!
//! Inside: `call` (the calling side) → `serve` (the serving side).

mod call;
mod serve;

pub use self::call::{Call, CallError, FallibleCall, FallibleReplyFuture};
pub use self::serve::{Method, Serving, ServingBuilder, no_reply};

use moonpool_core::UID;

/// The token of method `index` of the interface `interface` served at base token `base`.
///
/// The base is mixed with the interface id (exclusive or), then
/// [`adjusted`](UID::adjusted) by the method index. A base is either drawn at random when a
/// server starts (the default: a rebooted server has new tokens, so calls meant for the old one
/// end with `EndpointNotFound`) or fixed (a well-known base such as `UID::well_known(7)`, for
/// bootstrap services that clients find from an address alone). `#[service]` makes the interface
/// id from the trait's name and methods, with its lowest bit set, so the derived tokens are never
/// well-known ones.
#[must_use]
pub const fn method_token(base: UID, interface: UID, index: u32) -> UID {
    UID::new(base.first ^ interface.first, base.second ^ interface.second).adjusted(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_method_tokens_are_distinct_and_never_well_known() {
        let interface = UID::new(0x1234_5678_9abc_def1, 0x0fed_cba9_8765_4321);
        for base in [
            UID::well_known(7),
            UID::new(3, 4),
            UID::new(u64::MAX - 9, 0),
        ] {
            let tokens: Vec<UID> = (0..64).map(|i| method_token(base, interface, i)).collect();
            for (i, token) in tokens.iter().enumerate() {
                assert!(token.is_valid());
                assert!(!token.is_well_known(), "{token} (method {i} at {base})");
                assert!(tokens[..i].iter().all(|t| t != token));
            }
        }
        let other = UID::new(interface.first ^ 2, interface.second);
        assert_ne!(
            method_token(UID::well_known(7), interface, 0),
            method_token(UID::well_known(7), other, 0)
        );
    }
}

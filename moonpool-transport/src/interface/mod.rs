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
//!   [`no_reply`] (a handler that ends without answering), and what the generated code builds
//!   it with ([`ServingBuilder`], and a [`Method`] type per method).
//! - Tokens: [`method_token`] derives method `i`'s token from the service's base token and the
//!   interface id, so a client of one service pointed at a server of another finds nothing
//!   (`EndpointNotFound`) instead of calling the wrong method. The interface id is a hash of
//!   the trait, or [`pinned_interface_id`] of the id a service pins with `#[service(id = N)]`.
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

/// The interface id of a service that pins its id with `#[service(id = N)]`: made from `id`
/// alone, so the service's tokens do not change when its trait or methods are renamed (for
/// well-known services whose clients are built elsewhere, from another version of the code).
///
/// Distinct ids give distinct interface ids (the second half is a bijection of `id`), spread
/// over all 128 bits so that the method tokens of two pinned services served at one base do
/// not meet, and with the lowest bit of the first half set, as for hashed ids, so a derived
/// token is never a well-known one. The id is yours to keep unique: two services that pin the
/// same id have the same tokens (served at one base on one transport, the second fails with
/// `TransportError::TokenInUse`; a client of one pointed at the other reaches the other's
/// methods by index).
///
/// ```
/// use moonpool_transport::interface::pinned_interface_id;
/// assert_eq!(pinned_interface_id(7), pinned_interface_id(7));
/// assert_ne!(pinned_interface_id(7), pinned_interface_id(8));
/// assert_eq!(pinned_interface_id(7).first & 1, 1);
/// ```
#[must_use]
pub const fn pinned_interface_id(id: u64) -> UID {
    /// A bijection of `u64` that spreads every input bit over the output (xor-shifts and odd
    /// multipliers, the finalizer of the SplitMix64 generator).
    const fn spread(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    UID::new(
        spread(id ^ 0x6d6f_6f6e_706f_6f6c) | 1,
        spread(id.wrapping_add(0x9e37_79b9_7f4a_7c15)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pinned_interface_ids_are_fixed_and_distinct() {
        // Pinned: these values are what clients of already deployed services compute.
        assert_eq!(
            pinned_interface_id(0),
            UID::new(0xdde5_592c_9dc5_08d1, 0xe220_a839_7b1d_cdaf)
        );
        let ids: Vec<UID> = (0..1_000).map(pinned_interface_id).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(id.first & 1, 1);
            assert!(ids[..i].iter().all(|other| other != id), "id {i}");
        }
        // The method tokens of neighbouring ids at one base do not meet.
        let base = UID::well_known(9);
        let tokens: Vec<UID> = (0..100)
            .flat_map(|id| (0..16).map(move |i| method_token(base, pinned_interface_id(id), i)))
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            assert!(!token.is_well_known());
            assert!(tokens[..i].iter().all(|other| other != token));
        }
    }

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

//! What travels inside packets: connection control frames, RPC envelopes and built-in messages.
//!
//! - **Control frames** use the zero token (never an endpoint): the `Hello` every connection
//!   starts with (protocol magic and version, the sender's instance id and listening address) and
//!   `Ack` (the receiver's count of packets received on this connection, which releases reliable
//!   packets from the sender's queue).
//! - **Requests** carry `[reply token: 16 bytes][body]`; a zero reply token means no reply is
//!   wanted (fire and forget).
//! - **Replies** carry `[0][body]` for a value or `[1][code][detail]` for an error.
//! - **EndpointNotFound notices** are sent to the well-known `EndpointNotFound` token with the
//!   unknown token as payload.
//! - **Pings** are requests to the well-known `Ping` token; the reply echoes the body.
//!
//! Floor 1: encodings only, on top of the [`wire`](crate::wire) format. It knows nothing of
//! connections, peers, endpoints or codecs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use moonpool_core::{NetworkAddress, UID};

/// The zero token marks connection control frames.
pub const CONTROL_TOKEN: UID = UID::new(0, 0);
/// First bytes of every `Hello`.
pub const MAGIC: [u8; 8] = *b"MOONPOOL";
/// Version of this protocol; connections between different versions are refused.
pub const PROTOCOL_VERSION: u16 = 1;

const KIND_HELLO: u8 = 1;
const KIND_ACK: u8 = 2;

const REPLY_OK: u8 = 0;
const REPLY_ERR: u8 = 1;

/// A packet that does not follow the protocol; the connection carrying it is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first packet of a connection was not a `Hello`.
    #[error("expected a Hello as the first packet, got a packet for token {token}")]
    MissingHello {
        /// The token of the packet received instead.
        token: UID,
    },
    /// A `Hello` with the wrong magic bytes.
    #[error("bad magic {found:02x?} in Hello (not a Moonpool transport)")]
    BadMagic {
        /// The bytes found.
        found: Vec<u8>,
    },
    /// A `Hello` from another protocol version.
    #[error("peer speaks protocol version {found}, this transport speaks {PROTOCOL_VERSION}")]
    VersionMismatch {
        /// The peer's version.
        found: u16,
    },
    /// A control frame of an unknown kind, or a second `Hello`.
    #[error("unexpected control frame of kind {kind}")]
    UnexpectedControl {
        /// The kind byte.
        kind: u8,
    },
    /// A frame too short for what it claims to be.
    #[error("{what} is {len} bytes, expected at least {expected}")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The minimum length.
        expected: usize,
    },
    /// An address family byte that is neither 4 nor 6.
    #[error("unknown address family {family}")]
    BadAddressFamily {
        /// The byte found.
        family: u8,
    },
    /// An acknowledgement for more packets than were sent on the connection.
    #[error("acknowledgement of {acked} packets, but only {sent} were sent on this connection")]
    AckBeyondSent {
        /// Count acknowledged.
        acked: u64,
        /// Count sent.
        sent: u64,
    },
}

/// The first frame of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Random per transport instance: a new value means the remote process restarted.
    pub instance: UID,
    /// The address the sender listens on, if it listens.
    pub listen_address: Option<NetworkAddress>,
}

/// A decoded control frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Connection greeting.
    Hello(Hello),
    /// Count of packets the receiver got on this connection so far.
    Ack(u64),
}

/// Encodes a `Hello` payload.
pub fn encode_hello(hello: &Hello) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.push(KIND_HELLO);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    put_uid(&mut out, hello.instance);
    match hello.listen_address {
        None => out.push(0),
        Some(address) => {
            out.push(1);
            put_address(&mut out, &address);
        }
    }
    out
}

/// Encodes an `Ack` payload.
pub fn encode_ack(count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(KIND_ACK);
    out.extend_from_slice(&count.to_le_bytes());
    out
}

/// Decodes a control frame payload.
pub fn decode_control(payload: &[u8]) -> Result<Control, ProtocolError> {
    let Some((&kind, rest)) = payload.split_first() else {
        return Err(ProtocolError::Truncated {
            what: "control frame",
            len: 0,
            expected: 1,
        });
    };
    match kind {
        KIND_HELLO => decode_hello(rest).map(Control::Hello),
        KIND_ACK => {
            let count = read_u64(rest, "Ack")?;
            Ok(Control::Ack(count))
        }
        other => Err(ProtocolError::UnexpectedControl { kind: other }),
    }
}

fn decode_hello(bytes: &[u8]) -> Result<Hello, ProtocolError> {
    const FIXED: usize = 8 + 2 + 16 + 1;
    if bytes.len() < FIXED {
        return Err(ProtocolError::Truncated {
            what: "Hello",
            len: bytes.len(),
            expected: FIXED,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(ProtocolError::BadMagic {
            found: bytes[..8].to_vec(),
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::VersionMismatch { found: version });
    }
    let instance = read_uid(&bytes[10..26], "Hello instance")?;
    let listen_address = match bytes[26] {
        0 => None,
        _ => Some(read_address(&bytes[27..])?),
    };
    Ok(Hello {
        instance,
        listen_address,
    })
}

fn put_uid(out: &mut Vec<u8>, uid: UID) {
    out.extend_from_slice(&uid.first.to_le_bytes());
    out.extend_from_slice(&uid.second.to_le_bytes());
}

fn put_address(out: &mut Vec<u8>, address: &NetworkAddress) {
    match address.ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&address.port.to_le_bytes());
    out.extend_from_slice(&address.flags.to_le_bytes());
}

fn read_address(bytes: &[u8]) -> Result<NetworkAddress, ProtocolError> {
    let truncated = |expected| ProtocolError::Truncated {
        what: "address",
        len: bytes.len(),
        expected,
    };
    let (&family, rest) = bytes.split_first().ok_or_else(|| truncated(1))?;
    let (ip, rest): (IpAddr, &[u8]) = match family {
        4 => {
            let octets: [u8; 4] = rest
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| truncated(9))?;
            (Ipv4Addr::from(octets).into(), &rest[4..])
        }
        6 => {
            let octets: [u8; 16] = rest
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| truncated(21))?;
            (Ipv6Addr::from(octets).into(), &rest[16..])
        }
        other => return Err(ProtocolError::BadAddressFamily { family: other }),
    };
    let tail = rest.get(..4).ok_or_else(|| truncated(bytes.len() + 4))?;
    let port = u16::from_le_bytes([tail[0], tail[1]]);
    let flags = u16::from_le_bytes([tail[2], tail[3]]);
    Ok(NetworkAddress::new(ip, port).with_flags(flags))
}

fn read_u64(bytes: &[u8], what: &'static str) -> Result<u64, ProtocolError> {
    let word: [u8; 8] =
        bytes
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(ProtocolError::Truncated {
                what,
                len: bytes.len(),
                expected: 8,
            })?;
    Ok(u64::from_le_bytes(word))
}

/// Reads a token from the first 16 bytes.
pub fn read_uid(bytes: &[u8], what: &'static str) -> Result<UID, ProtocolError> {
    if bytes.len() < 16 {
        return Err(ProtocolError::Truncated {
            what,
            len: bytes.len(),
            expected: 16,
        });
    }
    let first = read_u64(&bytes[..8], what)?;
    let second = read_u64(&bytes[8..16], what)?;
    Ok(UID::new(first, second))
}

/// Bytes of a token on the wire.
pub const UID_SIZE: usize = 16;

/// Appends a token's 16 bytes.
pub fn write_uid(out: &mut Vec<u8>, uid: UID) {
    put_uid(out, uid);
}

/// Splits a request payload into its reply token (zero when no reply is wanted) and body.
pub fn split_request(payload: &[u8]) -> Result<(UID, &[u8]), ProtocolError> {
    let token = read_uid(payload, "request envelope")?;
    Ok((token, &payload[UID_SIZE..]))
}

/// Error codes carried by error replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireReplyError {
    /// The promise was dropped.
    BrokenPromise,
    /// The server could not decode the request, or encode the reply.
    Serialization(String),
    /// The destination queue was full.
    Overloaded,
}

const CODE_BROKEN_PROMISE: u8 = 1;
const CODE_SERIALIZATION: u8 = 2;
const CODE_OVERLOADED: u8 = 3;

/// Appends the header of a successful reply; the body follows.
pub fn reply_ok_prefix(out: &mut Vec<u8>) {
    out.push(REPLY_OK);
}

/// The header of a successful reply, as bytes.
pub(crate) const REPLY_OK_PREFIX: [u8; 1] = [REPLY_OK];

/// The error reply for a request or reply that could not be encoded or sent (`message` says why).
pub(crate) fn serialization_error_reply(message: String) -> Vec<u8> {
    encode_reply_error(&WireReplyError::Serialization(message))
}

/// Encodes an error reply.
pub fn encode_reply_error(error: &WireReplyError) -> Vec<u8> {
    let mut out = vec![REPLY_ERR];
    match error {
        WireReplyError::BrokenPromise => out.push(CODE_BROKEN_PROMISE),
        WireReplyError::Serialization(message) => {
            out.push(CODE_SERIALIZATION);
            // Bounded: a reply error never grows past a short message.
            let mut end = message.len().min(512);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            out.extend_from_slice(&message.as_bytes()[..end]);
        }
        WireReplyError::Overloaded => out.push(CODE_OVERLOADED),
    }
    out
}

/// A decoded reply: the value's bytes, or an error.
pub fn decode_reply(payload: &[u8]) -> Result<Result<&[u8], WireReplyError>, ProtocolError> {
    let Some((&tag, rest)) = payload.split_first() else {
        return Err(ProtocolError::Truncated {
            what: "reply",
            len: 0,
            expected: 1,
        });
    };
    match tag {
        REPLY_OK => Ok(Ok(rest)),
        REPLY_ERR => {
            let Some((&code, detail)) = rest.split_first() else {
                return Err(ProtocolError::Truncated {
                    what: "error reply",
                    len: payload.len(),
                    expected: 2,
                });
            };
            Ok(Err(match code {
                CODE_BROKEN_PROMISE => WireReplyError::BrokenPromise,
                CODE_OVERLOADED => WireReplyError::Overloaded,
                _ => WireReplyError::Serialization(String::from_utf8_lossy(detail).into_owned()),
            }))
        }
        other => Err(ProtocolError::UnexpectedControl { kind: other }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn test_hello_round_trip_v4_v6_and_none() {
        for address in [
            None,
            Some("10.0.0.1:4500".parse::<NetworkAddress>().unwrap()),
            Some("[::1]:443:tls".parse::<NetworkAddress>().unwrap()),
        ] {
            let hello = Hello {
                instance: UID::new(7, 8),
                listen_address: address,
            };
            assert_eq!(
                decode_control(&encode_hello(&hello)).unwrap(),
                Control::Hello(hello)
            );
        }
    }

    #[test]
    fn test_control_errors() {
        assert_eq!(decode_control(&encode_ack(42)).unwrap(), Control::Ack(42));
        assert!(matches!(
            decode_control(&[2, 1, 2]),
            Err(ProtocolError::Truncated { what: "Ack", .. })
        ));
        assert!(matches!(
            decode_control(&[9]),
            Err(ProtocolError::UnexpectedControl { kind: 9 })
        ));
        let mut hello = encode_hello(&Hello {
            instance: UID::new(1, 1),
            listen_address: None,
        });
        hello[1] = b'X';
        assert!(matches!(
            decode_control(&hello),
            Err(ProtocolError::BadMagic { .. })
        ));
        let mut hello = encode_hello(&Hello {
            instance: UID::new(1, 1),
            listen_address: None,
        });
        hello[9] = 99;
        assert!(matches!(
            decode_control(&hello),
            Err(ProtocolError::VersionMismatch { found: 99 })
        ));
    }

    #[test]
    fn test_reply_envelopes() {
        let mut ok = Vec::new();
        reply_ok_prefix(&mut ok);
        ok.extend_from_slice(b"body");
        assert_eq!(decode_reply(&ok).unwrap(), Ok(&b"body"[..]));
        for error in [
            WireReplyError::BrokenPromise,
            WireReplyError::Overloaded,
            WireReplyError::Serialization("bad".into()),
        ] {
            assert_eq!(
                decode_reply(&encode_reply_error(&error)).unwrap(),
                Err(error)
            );
        }
        assert!(decode_reply(&[]).is_err());
        assert!(decode_reply(&[1]).is_err());
        let (token, body) = split_request(&[1u8; 20]).unwrap();
        assert_eq!(
            token,
            UID::new(u64::from_le_bytes([1; 8]), u64::from_le_bytes([1; 8]))
        );
        assert_eq!(body, &[1u8; 4]);
        assert!(split_request(&[0u8; 15]).is_err());
    }
}

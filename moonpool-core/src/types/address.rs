//! [`NetworkAddress`]: where a process listens.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Flag: the address speaks TLS. Written as a `:tls` suffix.
pub const FLAG_TLS: u16 = 1;
/// Flag: the address is reachable from other machines (not a loopback-only listener).
pub const FLAG_PUBLIC: u16 = 2;

/// An IP address, a port and flags.
///
/// Parses `"10.0.0.1:4500"`, `"[::1]:4500"`, and either with a `:tls` suffix.
///
/// ```
/// use moonpool_core::NetworkAddress;
/// let address: NetworkAddress = "10.0.0.1:4500".parse().unwrap();
/// assert_eq!(address.port, 4500);
/// assert_eq!(address.to_string(), "10.0.0.1:4500");
/// let tls: NetworkAddress = "[::1]:443:tls".parse().unwrap();
/// assert!(tls.is_tls());
/// assert!("nonsense".parse::<NetworkAddress>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NetworkAddress {
    /// IPv4 or IPv6 address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
    /// A bit set of `FLAG_*` values.
    pub flags: u16,
}

impl NetworkAddress {
    /// An address without flags.
    pub const fn new(ip: IpAddr, port: u16) -> Self {
        Self { ip, port, flags: 0 }
    }

    /// The same address with `flags` set.
    pub const fn with_flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }

    /// True when [`FLAG_TLS`] is set.
    pub const fn is_tls(&self) -> bool {
        self.flags & FLAG_TLS != 0
    }

    /// True when [`FLAG_PUBLIC`] is set.
    pub const fn is_public(&self) -> bool {
        self.flags & FLAG_PUBLIC != 0
    }

    /// The IP and port as a socket address.
    pub const fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

impl From<SocketAddr> for NetworkAddress {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip(), addr.port())
    }
}

impl fmt::Display for NetworkAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port)?,
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port)?,
        }
        if self.is_tls() {
            f.write_str(":tls")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NetworkAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkAddress({self})")
    }
}

/// Text that is not a network address; each variant names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressParseError {
    /// Nothing was given.
    #[error("empty network address")]
    Empty,
    /// No `:port` part.
    #[error("network address '{input}' has no port (expected ip:port)")]
    MissingPort {
        /// The text given.
        input: String,
    },
    /// The IP part is not an IPv4 or bracketed IPv6 address.
    #[error("network address '{input}' has an invalid IP '{ip}'")]
    InvalidIp {
        /// The text given.
        input: String,
        /// The part that should have been an IP.
        ip: String,
    },
    /// The port part is not a number in 0..=65535.
    #[error("network address '{input}' has an invalid port '{port}'")]
    InvalidPort {
        /// The text given.
        input: String,
        /// The part that should have been a port.
        port: String,
    },
}

impl FromStr for NetworkAddress {
    type Err = AddressParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(AddressParseError::Empty);
        }
        let (body, flags) = match input.strip_suffix(":tls") {
            Some(body) => (body, FLAG_TLS),
            None => (input, 0),
        };
        let (ip_text, port_text) =
            split_host_port(body).ok_or_else(|| AddressParseError::MissingPort {
                input: input.to_string(),
            })?;
        let ip: IpAddr = ip_text.parse().map_err(|_| AddressParseError::InvalidIp {
            input: input.to_string(),
            ip: ip_text.to_string(),
        })?;
        let port: u16 = port_text
            .parse()
            .map_err(|_| AddressParseError::InvalidPort {
                input: input.to_string(),
                port: port_text.to_string(),
            })?;
        Ok(Self::new(ip, port).with_flags(flags))
    }
}

/// Splits `ip:port` or `[v6]:port`; `None` when there is no port separator.
fn split_host_port(body: &str) -> Option<(&str, &str)> {
    if let Some(rest) = body.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((ip, port));
    }
    let (ip, port) = body.rsplit_once(':')?;
    // An unbracketed IPv6 address has several colons: refuse to guess where the port starts.
    if ip.contains(':') {
        return None;
    }
    Some((ip, port))
}

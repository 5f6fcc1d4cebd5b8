//! The built-in endpoints every transport registers at start: Ping (echoes the request body;
//! the connection monitor's pings and [`NetTransport::ping`](crate::NetTransport::ping) call it)
//! and EndpointNotFound (notices that an endpoint does not exist).

use std::sync::{Arc, Weak};

use moonpool_core::{Endpoint, UID, WellKnownToken};

use super::core::Core;
use super::receiver::PacketReceiver;
use super::route::ReplyRoute;
use crate::connection::{Origin, Receive};
use crate::error::TransportError;
use crate::protocol;

impl Core {
    /// Registers the built-in Ping and EndpointNotFound receivers.
    pub(crate) fn register_builtins(&self) -> Result<(), TransportError> {
        let mut registry = self.registry();
        registry.endpoints.insert(
            WellKnownToken::Ping.uid(),
            Arc::new(PingReceiver {
                core: self.weak_self.clone(),
            }),
        )?;
        registry.endpoints.insert(
            WellKnownToken::EndpointNotFound.uid(),
            Arc::new(EndpointNotFoundReceiver {
                core: self.weak_self.clone(),
            }),
        )?;
        self.endpoints_changed();
        Ok(())
    }
}

/// The built-in Ping endpoint: echoes the request body.
struct PingReceiver {
    core: Weak<Core>,
}

impl PacketReceiver for PingReceiver {}

impl Receive for PingReceiver {
    fn receive(&self, _token: UID, payload: &[u8], origin: &Origin) {
        let Ok((reply_token, body)) = protocol::split_request(payload) else {
            return;
        };
        if !reply_token.is_valid() {
            return;
        }
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let mut reply = Vec::with_capacity(1 + body.len());
        protocol::reply_ok_prefix(&mut reply);
        reply.extend_from_slice(body);
        ReplyRoute::back(origin, &core.weak_self, false).send(reply_token, reply);
    }
}

/// The built-in EndpointNotFound endpoint (for notices delivered locally or on an accepted
/// connection; the ones arriving on outbound connections are handled by the connection).
struct EndpointNotFoundReceiver {
    core: Weak<Core>,
}

impl PacketReceiver for EndpointNotFoundReceiver {}

impl Receive for EndpointNotFoundReceiver {
    fn receive(&self, _token: UID, payload: &[u8], origin: &Origin) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let Ok(missing) = protocol::read_uid(payload, "EndpointNotFound notice") else {
            return;
        };
        match origin {
            Origin::Local => {
                if let Some(local) = core.local_address {
                    core.on_endpoint_not_found(Endpoint::new(local, missing), false);
                }
            }
            Origin::Connection(conn) => {
                if let Some(remote) = conn.remote() {
                    core.on_endpoint_not_found(Endpoint::new(remote, missing), true);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::TransportConfig;
    use crate::env::tests::ManualEnv;

    #[test]
    fn test_reserved_well_known_tokens_are_refused() {
        let env = ManualEnv::new();
        let core = Core::new(TransportConfig::default(), env.clone(), env, None, false);
        core.register_builtins().unwrap();
        let receiver: Arc<dyn PacketReceiver> = Arc::new(PingReceiver { core: Weak::new() });
        for index in 0..3 {
            assert!(matches!(
                core.register(UID::well_known(index), Arc::clone(&receiver)),
                Err(TransportError::InvalidWellKnownToken { first: 3, .. })
            ));
        }
        core.register(UID::well_known(3), Arc::clone(&receiver))
            .unwrap();
        assert!(matches!(
            core.register(UID::well_known(3), receiver),
            Err(TransportError::TokenInUse { .. })
        ));
    }
}

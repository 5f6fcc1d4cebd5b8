//! Floor 1: the knobs of an actor node, checked before the node starts.

use std::time::Duration;

use moonpool_core::UID;

/// How an actor node behaves. Every field has a default; [`validate`](Self::validate) names the
/// first bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorConfig {
    /// Activations a node hosts at most; past it, new activations get
    /// [`ActorError::TooManyActivations`](super::ActorError::TooManyActivations). Default 1024.
    pub max_activations: usize,
    /// Messages one activation holds at most: those waiting in its mailbox plus its
    /// `#[reentrant]` calls running (a running `&mut self` turn is not counted); past it,
    /// senders get [`ActorError::MailboxFull`](super::ActorError::MailboxFull). Default 256.
    pub mailbox_capacity: usize,
    /// An activation with no message for this long is deactivated. Default 60 s.
    pub idle_timeout: Duration,
    /// Routing attempts per call (each a directory lookup and a delivery) before
    /// [`ActorError::TooManyHops`](super::ActorError::TooManyHops). Default 8.
    pub max_hops: u32,
    /// How long a delivery to a host may take before the call ends with
    /// [`ActorError::Timeout`](super::ActorError::Timeout). Default 10 s.
    pub call_timeout: Duration,
    /// How long a directory or state-store request may take. Default 3 s.
    pub directory_timeout: Duration,
    /// The pause before retrying a delivery the host asked to retry (multiplied by the attempt
    /// number). Default 20 ms.
    pub retry_backoff: Duration,
    /// How long a draining node waits for its activations to finish. Default 30 s.
    pub drain_timeout: Duration,
    /// Entries a node's directory cache holds at most (the oldest identity in key order is
    /// dropped past it). Default 10 000.
    pub cache_capacity: usize,
    /// The base token every node serves the actor protocol at (all members must agree).
    /// Default `UID::well_known(41)`.
    pub service_base: UID,
}

impl Default for ActorConfig {
    fn default() -> Self {
        Self {
            max_activations: 1024,
            mailbox_capacity: 256,
            idle_timeout: Duration::from_secs(60),
            max_hops: 8,
            call_timeout: Duration::from_secs(10),
            directory_timeout: Duration::from_secs(3),
            retry_backoff: Duration::from_millis(20),
            drain_timeout: Duration::from_secs(30),
            cache_capacity: 10_000,
            service_base: UID::well_known(41),
        }
    }
}

/// A bad [`ActorConfig`] value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid actor configuration: {field} = {value}: {reason}")]
pub struct ActorConfigError {
    /// The field.
    pub field: &'static str,
    /// Its value, printed.
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl ActorConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// The first bad value, named.
    pub fn validate(&self) -> Result<(), ActorConfigError> {
        let bad = |field, value: String, reason| {
            Err(ActorConfigError {
                field,
                value,
                reason,
            })
        };
        if self.max_activations == 0 {
            return bad("max_activations", "0".into(), "must be at least 1");
        }
        if self.mailbox_capacity == 0 {
            return bad("mailbox_capacity", "0".into(), "must be at least 1");
        }
        if self.max_hops == 0 {
            return bad("max_hops", "0".into(), "must be at least 1");
        }
        if self.cache_capacity == 0 {
            return bad("cache_capacity", "0".into(), "must be at least 1");
        }
        for (field, value) in [
            ("idle_timeout", self.idle_timeout),
            ("call_timeout", self.call_timeout),
            ("directory_timeout", self.directory_timeout),
            ("drain_timeout", self.drain_timeout),
        ] {
            if value.is_zero() {
                return bad(field, format!("{value:?}"), "must be more than zero");
            }
        }
        if !self.service_base.is_valid() {
            return bad(
                "service_base",
                self.service_base.to_string(),
                "must be a valid (non-zero) UID",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_default_is_valid_and_bad_values_are_named() {
        assert_eq!(ActorConfig::default().validate(), Ok(()));
        let error = ActorConfig {
            mailbox_capacity: 0,
            ..ActorConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(error.field, "mailbox_capacity");
        let error = ActorConfig {
            idle_timeout: Duration::ZERO,
            ..ActorConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(error.field, "idle_timeout");
        assert!(error.to_string().contains("idle_timeout = 0ns"), "{error}");
        let error = ActorConfig {
            service_base: UID::new(0, 0),
            ..ActorConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(error.field, "service_base");
    }
}

//! Throughput limits on what leaves for the adapters, per channel and per
//! tenant (governor, GCRA). Limits are **per replica**: with N replicas
//! sharing a channel, each lets through up to the configured rate, so set
//! each replica's limit to the provider's limit divided by N.
//!
//! A contact a limit holds back is simply not leased: it stays ready in the
//! database, in priority and release order, and is checked against the rules
//! again when it is leased later, so it never goes out after its window.

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::Channel;

/// A rate with its burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Rate {
    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }

    fn limiter(self) -> DefaultDirectRateLimiter {
        RateLimiter::direct(self.quota())
    }
}

/// The configured limits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimitConfig {
    pub channels: HashMap<Channel, Rate>,
    pub tenants: HashMap<String, Rate>,
    /// API requests per key (every RPC), per replica.
    pub per_key: Option<Rate>,
}

/// The live limiters of one replica.
#[derive(Default)]
pub struct RateLimits {
    channels: HashMap<Channel, DefaultDirectRateLimiter>,
    tenants: HashMap<String, DefaultDirectRateLimiter>,
    keys: Option<DefaultKeyedRateLimiter<String>>,
}

/// Which limit held a contact back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    Channel(Channel),
    Tenant(String),
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> RateLimits {
        RateLimits {
            channels: config.channels.iter().map(|(c, r)| (*c, r.limiter())).collect(),
            tenants: config.tenants.iter().map(|(t, r)| (t.clone(), r.limiter())).collect(),
            keys: config.per_key.map(|r| RateLimiter::keyed(r.quota())),
        }
    }

    /// Takes one request from the API key's limit; `false` when it is exhausted.
    pub fn admit_request(&self, key_prefix: &str) -> bool {
        self.keys.as_ref().is_none_or(|keys| keys.check_key(&key_prefix.to_string()).is_ok())
    }

    /// Takes one unit from the tenant's and the channel's limits, or says
    /// which one is exhausted (taking nothing from the channel then).
    pub fn admit(&self, tenant: &str, channel: Channel) -> Result<(), Held> {
        if let Some(limiter) = self.tenants.get(tenant)
            && limiter.check().is_err()
        {
            return Err(Held::Tenant(tenant.to_string()));
        }
        if let Some(limiter) = self.channels.get(&channel)
            && limiter.check().is_err()
        {
            return Err(Held::Channel(channel));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: u32, burst: u32) -> Rate {
        Rate {
            per_second: NonZeroU32::new(per_second).expect("nonzero"),
            burst: NonZeroU32::new(burst).expect("nonzero"),
        }
    }

    #[test]
    fn a_burst_is_admitted_then_the_channel_holds() {
        let mut config = RateLimitConfig::default();
        config.channels.insert(Channel::Whatsapp, rate(1, 3));
        let limits = RateLimits::new(&config);
        let admitted = (0..10).filter(|_| limits.admit("acme", Channel::Whatsapp).is_ok()).count();
        assert_eq!(admitted, 3);
        assert_eq!(limits.admit("acme", Channel::Whatsapp), Err(Held::Channel(Channel::Whatsapp)));
        assert!(limits.admit("acme", Channel::Sms).is_ok(), "unlimited channels pass");
    }

    #[test]
    fn tenant_limits_apply_across_channels() {
        let mut config = RateLimitConfig::default();
        config.tenants.insert("acme".into(), rate(1, 2));
        let limits = RateLimits::new(&config);
        assert!(limits.admit("acme", Channel::Sms).is_ok());
        assert!(limits.admit("acme", Channel::Email).is_ok());
        assert_eq!(limits.admit("acme", Channel::Call), Err(Held::Tenant("acme".into())));
        assert!(limits.admit("globex", Channel::Call).is_ok());
    }
}

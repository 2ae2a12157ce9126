use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota};
use inland_core::Vin;

use crate::{Error, GatewayConfig};

/// A token bucket per vehicle, so one misbehaving vehicle cannot starve the others.
#[derive(Clone)]
pub struct VehicleRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<Vin>>,
    per_second: u32,
    burst: u32,
}

impl VehicleRateLimit {
    pub fn new(config: &GatewayConfig) -> Result<Self, Error> {
        let nonzero = |v: u32, name: &str| {
            NonZeroU32::new(v)
                .ok_or_else(|| Error::Config(format!("gateway.{name} must be at least 1")))
        };
        let per_second = nonzero(config.rate_per_vehicle, "rate_per_vehicle")?;
        let burst = nonzero(config.burst_per_vehicle, "burst_per_vehicle")?;
        Ok(Self {
            limiter: Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            )),
            per_second: per_second.get(),
            burst: burst.get(),
        })
    }

    pub fn check(&self, vin: &Vin) -> Result<(), Error> {
        self.limiter.check_key(vin).map_err(|_| Error::RateLimited {
            per_second: self.per_second,
            burst: self.burst,
        })
    }

    /// Forgets vehicles whose buckets are full again; called periodically so the
    /// limiter's memory follows the active fleet, not every vehicle ever seen.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_per_vehicle() {
        let config = GatewayConfig {
            rate_per_vehicle: 1,
            burst_per_vehicle: 3,
            ..Default::default()
        };
        let limit = VehicleRateLimit::new(&config).unwrap();
        let a = Vin::parse("LSVAU2180N2183294").unwrap();
        let b = Vin::parse("WVWZZZ1JZXW000001").unwrap();
        for _ in 0..3 {
            limit.check(&a).unwrap();
        }
        assert!(matches!(
            limit.check(&a),
            Err(Error::RateLimited {
                per_second: 1,
                burst: 3
            })
        ));
        limit.check(&b).expect("another vehicle has its own bucket");
        let zero = GatewayConfig {
            rate_per_vehicle: 0,
            ..Default::default()
        };
        assert!(VehicleRateLimit::new(&zero).is_err());
    }
}

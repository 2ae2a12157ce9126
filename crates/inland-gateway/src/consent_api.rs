//! The ConsentService (inland.consent.v1) on the gateway's listener: a vehicle acts for its
//! own VIN through its HMI, an operator for any VIN. The work is the ledger's
//! (inland-consent); this layer authenticates, rate-limits vehicles and maps errors.

use inland_consent::proto::consent_service_server::ConsentService;
use inland_consent::proto::{
    GetRequest, GetResponse, GrantRequest, GrantResponse, HistoryRequest, HistoryResponse,
    WithdrawRequest, WithdrawResponse, consent_event,
};
use inland_consent::{ConsentLedger, Principal};
use tonic::{Request, Response, Status};

use crate::limits::VehicleRateLimit;
use crate::{Error, identity, metrics};

#[derive(Clone)]
pub struct ConsentApi {
    ledger: ConsentLedger,
    rate: VehicleRateLimit,
    plaintext: bool,
}

impl ConsentApi {
    pub fn new(ledger: ConsentLedger, rate: VehicleRateLimit, plaintext: bool) -> Self {
        Self {
            ledger,
            rate,
            plaintext,
        }
    }

    /// The caller, rate-limited like its uploads when it is a vehicle.
    fn caller<T>(&self, call: &'static str, request: &Request<T>) -> Result<Principal, Status> {
        let who = identity::caller(request, self.plaintext).map_err(|e| {
            metrics::unauthenticated(&e);
            Status::from(e)
        })?;
        if let Principal::Vehicle(vin) = &who {
            self.rate.check(vin).map_err(|e| refused(call, e))?;
        }
        Ok(who)
    }
}

fn refused(call: &'static str, error: impl Into<Error>) -> Status {
    let error = error.into();
    metrics::consent_refused(call, &error);
    error.into()
}

#[tonic::async_trait]
impl ConsentService for ConsentApi {
    async fn grant(
        &self,
        request: Request<GrantRequest>,
    ) -> Result<Response<GrantResponse>, Status> {
        let who = self.caller("grant", &request)?;
        let event = self
            .ledger
            .grant(&who, request.into_inner())
            .await
            .map_err(|e| refused("grant", e))?;
        Ok(Response::new(GrantResponse { event: Some(event) }))
    }

    async fn withdraw(
        &self,
        request: Request<WithdrawRequest>,
    ) -> Result<Response<WithdrawResponse>, Status> {
        let who = self.caller("withdraw", &request)?;
        let event = self
            .ledger
            .withdraw(&who, request.into_inner())
            .await
            .map_err(|e| refused("withdraw", e))?;
        let erasure_request_id = match &event.change {
            Some(consent_event::Change::Withdrawn(w)) => w.erasure_request_id.clone(),
            _ => unreachable!("a withdrawal records a withdrawal"),
        };
        Ok(Response::new(WithdrawResponse {
            event: Some(event),
            erasure_request_id,
        }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let who = self.caller("get", &request)?;
        let states = self
            .ledger
            .get(&who, request.into_inner())
            .map_err(|e| refused("get", e))?;
        Ok(Response::new(states))
    }

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<HistoryResponse>, Status> {
        let who = self.caller("history", &request)?;
        let events = self
            .ledger
            .history(&who, request.into_inner())
            .map_err(|e| refused("history", e))?;
        Ok(Response::new(events))
    }
}

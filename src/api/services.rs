//! The tonic services: authenticate, validate, call the use cases, convert; each body answers an `ApiResult`.

use std::path::PathBuf;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::{KeyCache, Role, authenticate};
use super::error::{ApiError, ApiResult};
use super::pb;
use super::{convert, debtor};
use crate::app::group_commit::GroupQueue;
use crate::app::{Ack, App, AppError, CancelTarget, MAX_UNSPENT_CREDIT, Submission};
use crate::domain::IntentStatus;
use crate::preferences::Statements;
use crate::rules::RuleBook;
use crate::rules::coverage::{DEFAULT_LOOKAHEAD_DAYS, coverage};

/// Most intents in one `SubmitBatch`.
pub const MAX_BATCH: usize = 1_000;
/// Most items in one `Lease`.
pub const MAX_LEASE_ITEMS: i32 = 500;
/// Most intents in one `ListIntents` page.
pub const MAX_LIST_PAGE: i32 = 500;

/// Shared by the three services.
#[derive(Clone)]
pub struct Api {
    pub app: Arc<App>,
    pub rules_dir: PathBuf,
    /// Unary submissions and acks go through group commit.
    pub submits: GroupQueue<Submission>,
    pub acks: GroupQueue<Ack>,
    /// API keys recently found (authentication).
    pub keys: Arc<KeyCache>,
}

const SUBMITTERS: &[Role] = &[Role::Submitter];
const READERS: &[Role] = &[Role::Submitter, Role::Auditor];
const ADAPTERS: &[Role] = &[Role::Adapter];
/// Anyone may read the rules: the operator too, who reloads them.
const RULE_READERS: &[Role] = &[Role::Submitter, Role::Adapter, Role::Auditor, Role::Operator];
/// Reload affects every tenant: an operator's, never a tenant admin's, call.
const OPERATORS: &[Role] = &[Role::Operator];

#[tonic::async_trait]
impl pb::contact_scheduler_service_server::ContactSchedulerService for Api {
    async fn submit(&self, request: Request<pb::SubmitRequest>) -> Result<Response<pb::SubmitResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, SUBMITTERS).await?;
                let submission = convert::submission(&caller.tenant, request.get_ref().intent.as_ref())?;
                let row = self.submits.run(submission).await?;
                convert::submit_response(&row)
            }
            .await,
        )
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, SUBMITTERS).await?;
                let intents = &request.get_ref().intents;
                if intents.is_empty() || intents.len() > MAX_BATCH {
                    return Err(ApiError::InvalidArgument(format!("intents: send 1 to {MAX_BATCH} intents")));
                }
                // Invalid intents get their own error; the valid ones go in one transaction.
                let checked: Vec<ApiResult<_>> =
                    intents.iter().map(|i| convert::submission(&caller.tenant, Some(i))).collect();
                let valid: Vec<_> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
                let mut stored = self.app.submit(&valid).await?.into_iter();
                let results = checked
                    .into_iter()
                    .map(|c| {
                        let outcome = c.and_then(|_| {
                            let row =
                                stored.next().ok_or_else(|| ApiError::Internal("a batch result is missing".into()))?;
                            convert::submit_response(&row?)
                        });
                        let result = match outcome {
                            Ok(response) => pb::submit_batch_result::Result::Response(response),
                            Err(error) => {
                                let status = Status::from(error);
                                pb::submit_batch_result::Result::Error(tonic_types::Status {
                                    code: status.code() as i32,
                                    message: status.message().to_string(),
                                    details: Vec::new(),
                                })
                            }
                        };
                        pb::SubmitBatchResult { result: Some(result) }
                    })
                    .collect();
                Ok(pb::SubmitBatchResponse { results })
            }
            .await,
        )
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, READERS).await?;
                let intent_id = convert::id("intent_id", &request.get_ref().intent_id)?;
                let row = self
                    .app
                    .store
                    .get_intent(&caller.tenant, &intent_id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("intent_id {intent_id:?} not found")))?;
                Ok(pb::GetResponse { intent: Some(convert::intent_view(&row)?) })
            }
            .await,
        )
    }

    async fn list_intents(
        &self,
        request: Request<pb::ListIntentsRequest>,
    ) -> Result<Response<pb::ListIntentsResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, READERS).await?;
                let req = request.get_ref();
                let debtor_id =
                    if req.debtor_id.is_empty() { None } else { Some(convert::id("debtor_id", &req.debtor_id)?) };
                let status = convert::status_filter("status", req.status)?;
                let page_size = match req.page_size {
                    0 => 100,
                    n if (1..=MAX_LIST_PAGE).contains(&n) => n,
                    _ => return Err(ApiError::InvalidArgument(format!("page_size: must be 1 to {MAX_LIST_PAGE}"))),
                };
                let (created_at, intent_id) = convert::parse_page_token(&req.page_token)?;
                let rows = self
                    .app
                    .store
                    .list_intents(
                        &caller.tenant,
                        debtor_id.as_deref(),
                        status,
                        (created_at, &intent_id),
                        i64::from(page_size) + 1,
                    )
                    .await?;
                let more = rows.len() > page_size as usize;
                let page = &rows[..rows.len().min(page_size as usize)];
                let next_page_token = match page.last() {
                    Some(last) if more => convert::page_token(last),
                    _ => String::new(),
                };
                let intents = page.iter().map(convert::intent_view).collect::<Result<_, _>>()?;
                Ok(pb::ListIntentsResponse { intents, next_page_token })
            }
            .await,
        )
    }

    async fn cancel(&self, request: Request<pb::CancelRequest>) -> Result<Response<pb::CancelResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, SUBMITTERS).await?;
                let intent_id = convert::id("intent_id", &request.get_ref().intent_id)?;
                let reason = convert::free_text("reason", &request.get_ref().reason)?;
                let rows = self.app.cancel(&caller.tenant, CancelTarget::Intent(&intent_id), &reason).await?;
                let row = match rows.first() {
                    Some((row, _)) => row.clone(),
                    // It moved on while we waited for the lock: report what it is now.
                    None => self
                        .app
                        .store
                        .get_intent(&caller.tenant, &intent_id)
                        .await?
                        .ok_or_else(|| ApiError::NotFound(format!("intent_id {intent_id:?} not found")))?,
                };
                Ok(pb::CancelResponse { intent: Some(convert::intent_view(&row)?) })
            }
            .await,
        )
    }

    async fn cancel_for_debt(
        &self,
        request: Request<pb::CancelForDebtRequest>,
    ) -> Result<Response<pb::CancelForDebtResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, SUBMITTERS).await?;
                let debtor_id = convert::id("debtor_id", &request.get_ref().debtor_id)?;
                let debt_id = convert::id("debt_id", &request.get_ref().debt_id)?;
                let reason = convert::free_text("reason", &request.get_ref().reason)?;
                let rows = self
                    .app
                    .cancel(
                        &caller.tenant,
                        CancelTarget::Debt { debtor_id: &debtor_id, debt_id: Some(&debt_id) },
                        &reason,
                    )
                    .await?;
                let in_flight_intent_ids =
                    rows.iter().filter(|(_, in_flight)| *in_flight).map(|(r, _)| r.intent_id.clone()).collect();
                Ok(pb::CancelForDebtResponse {
                    cancelled_intent_ids: rows.into_iter().map(|(r, _)| r.intent_id).collect(),
                    in_flight_intent_ids,
                })
            }
            .await,
        )
    }

    async fn explain(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::ExplainResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, READERS).await?;
                let submission = convert::submission(&caller.tenant, request.get_ref().intent.as_ref())?;
                let at = match &request.get_ref().at {
                    Some(t) => convert::timestamp("at", t)?,
                    None => self.app.clock.now(),
                };
                let decision = self.app.explain(&submission.intent, at).await?;
                let decision = convert::decision_to_pb(&crate::intent_json::decision_json(&decision, at));
                Ok(pb::ExplainResponse { decision: Some(decision) })
            }
            .await,
        )
    }

    async fn set_preferences(
        &self,
        request: Request<pb::SetPreferencesRequest>,
    ) -> Result<Response<pb::SetPreferencesResponse>, Status> {
        answer(async move {
            let caller = authenticate(&self.app, &self.keys, &request, SUBMITTERS).await?;
            let req = request.get_ref();
            let debtor_id = convert::id("debtor_id", &req.debtor_id)?;
            let source = convert::id("source", &req.source)?;
            let channels = |field: &str, values: &[i32]| -> ApiResult<Vec<_>> {
                values.iter().enumerate().map(|(i, c)| convert::channel(&format!("{field}[{i}]"), *c)).collect()
            };
            let opt_out = channels("opt_out_channels", &req.opt_out_channels)?;
            let opt_in = channels("opt_in_channels", &req.opt_in_channels)?;
            if let Some(both) = opt_out.iter().find(|c| opt_in.contains(c)) {
                return Err(ApiError::InvalidArgument(format!(
                    "opt_in_channels: {both} is also in opt_out_channels; state one or the other"
                )));
            }
            let chosen = channels("chosen_channels", &req.chosen_channels)?;
            if req.clear_chosen_channels && !chosen.is_empty() {
                return Err(ApiError::InvalidArgument("clear_chosen_channels: set it or chosen_channels, not both".into()));
            }
            let statements = Statements {
                opt_out_all: req.opt_out_all,
                opt_out,
                opt_in,
                chosen: if req.clear_chosen_channels { Some(Vec::new()) } else { (!chosen.is_empty()).then_some(chosen) },
                ..Statements::default()
            };
            let now = self.app.clock.now();
            let at = req.at.as_ref().map(|t| convert::timestamp("at", t)).transpose()?.unwrap_or(now);
            let mut statements = statements;
            debtor::debtor_statements(req, at, &mut statements)?;
            if statements.is_empty() {
                return Err(ApiError::InvalidArgument(
                    "the request states nothing: set opt_out_all, opt_out_channels, opt_in_channels, chosen_channels, clear_chosen_channels, designations, revoke_designations, consents or revoke_consents".into(),
                ));
            }
            if at > now + chrono::Duration::minutes(5) {
                return Err(ApiError::InvalidArgument(format!(
                    "at: {} is in the future (the server's clock says {}); a statement is dated when the debtor made it",
                    at.to_rfc3339(),
                    now.to_rfc3339()
                )));
            }
            let (record, superseded, updated_at) = self
                .app
                .set_preferences(&caller.tenant, &debtor_id, &statements, at, &source)
                .await
                ?;
            let stored = record.effective();
            let (designations, consents) = debtor::debtor_view(&record);
            let to_pb = |list: &[crate::domain::Channel]| list.iter().map(|c| convert::channel_to_pb(*c) as i32).collect();
            let preferences = pb::Preferences {
                debtor_id,
                opted_out_channels: to_pb(&stored.opted_out),
                opted_out_all: stored.opted_out_all,
                chosen_channels: to_pb(&stored.chosen),
                wrong_party_channels: to_pb(&stored.wrong_party),
                source: record.latest_source().unwrap_or_default().to_string(),
                updated_at: Some(convert::to_timestamp(updated_at)),
                superseded,
                designations,
                consents,
            };
            Ok(pb::SetPreferencesResponse { preferences: Some(preferences) })
        }
        .await)
    }

    async fn record_contact(
        &self,
        request: Request<pb::RecordContactRequest>,
    ) -> Result<Response<pb::RecordContactResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, SUBMITTERS).await?;
                let (debtor_id, event, outcome, source) =
                    debtor::recorded_contact(request.get_ref(), self.app.clock.now())?;
                self.app.record_contact(&caller.tenant, &debtor_id, &event, outcome, &source).await?;
                Ok(pb::RecordContactResponse {})
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl pb::dispatch_service_server::DispatchService for Api {
    async fn lease(&self, request: Request<pb::LeaseRequest>) -> Result<Response<pb::LeaseResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, ADAPTERS).await?;
                let req = request.get_ref();
                let channels = lease_channels(&req.channels)?;
                if !(1..=MAX_LEASE_ITEMS).contains(&req.max_items) {
                    return Err(ApiError::InvalidArgument(format!("max_items: must be 1 to {MAX_LEASE_ITEMS}")));
                }
                let lease = lease_duration(req.lease_duration.as_ref())?;
                let leased = self.app.lease(Some(&caller.tenant), &channels, i64::from(req.max_items), lease).await?;
                let items = leased.iter().map(|(d, s)| convert::leased_item(d, s)).collect::<Result<_, _>>()?;
                Ok(pb::LeaseResponse { items })
            }
            .await,
        )
    }

    type DispatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::DispatchResponse, Status>>;

    async fn dispatch(
        &self,
        request: Request<tonic::Streaming<pb::DispatchRequest>>,
    ) -> Result<Response<Self::DispatchStream>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, ADAPTERS).await?;
                // Each later request is authenticated again with the same key: a
                // revoked or expired key ends the stream at the adapter's next grant.
                let key = Request::from_parts(request.metadata().clone(), Default::default(), ());
                let mut inbound = request.into_inner();
                let first = inbound
                    .message()
                    .await
                    .map_err(|e| ApiError::InvalidArgument(format!("request: {}", e.message())))?
                    .ok_or_else(|| {
                        ApiError::InvalidArgument("request: send the first request (channels, credit)".into())
                    })?;
                let channels = lease_channels(&first.channels)?;
                let credit = stream_credit(first.credit)?;
                let lease = lease_duration(first.lease_duration.as_ref())?;
                let mut stream = self
                    .app
                    .open_stream(&caller.tenant, channels, lease, credit)
                    .ok_or_else(|| ApiError::Unavailable("the service is stopping; reconnect".into()))?;
                let (sender, receiver) = tokio::sync::mpsc::channel::<Result<pb::DispatchResponse, Status>>(4);
                let (app, keys) = (self.app.clone(), self.keys.clone());
                tokio::spawn(async move {
                    let credit = stream.credit();
                    let mut granting = true;
                    // Ends on the first error, when the adapter goes away or the service stops;
                    // what was leased and not acknowledged is offered again when its lease expires.
                    let ended = loop {
                        tokio::select! {
                            contacts = stream.next() => match contacts {
                                Some(contacts) => {
                                    let items = contacts.iter().map(|(d, s)| convert::leased_item(d, s)).collect();
                                    match items {
                                        Ok(items) => {
                                            if sender.send(Ok(pb::DispatchResponse { items })).await.is_err() {
                                                return;
                                            }
                                        }
                                        Err(e) => break e,
                                    }
                                }
                                None => break ApiError::Unavailable("the service is stopping; reconnect".into()),
                            },
                            request = inbound.message(), if granting => match request {
                                Ok(Some(more)) => {
                                    if let Err(e) = authenticate(&app, &keys, &key, ADAPTERS).await {
                                        break e;
                                    }
                                    match more_credit(&more) {
                                        Ok(n) if credit.grant(n) => {}
                                        Ok(_) => {
                                            break ApiError::InvalidArgument(format!(
                                                "credit: at most {MAX_UNSPENT_CREDIT} granted and not yet used"
                                            ));
                                        }
                                        Err(e) => break e,
                                    }
                                }
                                // Half-closed: no more credit, the contacts granted still come.
                                Ok(None) => granting = false,
                                Err(_) => return,
                            },
                            _ = sender.closed() => return,
                        }
                    };
                    let _ = sender.send(Err(Status::from(ended))).await;
                });
                Ok(tokio_stream::wrappers::ReceiverStream::new(receiver))
            }
            .await,
        )
    }

    async fn ack(&self, request: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, ADAPTERS).await?;
                let req = request.get_ref();
                let dispatch_id = convert::id("dispatch_id", &req.dispatch_id)?;
                let outcome = convert::ack_outcome(req.outcome)?;
                let at = req
                    .at
                    .as_ref()
                    .map(|t| convert::timestamp("at", t))
                    .transpose()?
                    .unwrap_or_else(|| self.app.clock.now());
                let detail = convert::free_text("detail", &req.detail)?;
                let ack = Ack { tenant: Some(caller.tenant), dispatch_id, outcome, at, detail };
                let row = self.acks.run(ack).await?;
                Ok(pb::AckResponse {
                    status: convert::status_to_pb(row.status) as i32,
                    cancelled: row.status == IntentStatus::Cancelled,
                })
            }
            .await,
        )
    }
}

/// The channels of a Lease or the first Dispatch request.
fn lease_channels(channels: &[i32]) -> ApiResult<Vec<crate::domain::Channel>> {
    if channels.is_empty() || channels.len() > 7 {
        return Err(ApiError::InvalidArgument("channels: name 1 to 7 channels".into()));
    }
    channels.iter().enumerate().map(|(i, c)| convert::channel(&format!("channels[{i}]"), *c)).collect()
}

/// A lease's length: default 60 s, 1 s to 1 h.
fn lease_duration(duration: Option<&prost_types::Duration>) -> ApiResult<chrono::Duration> {
    let lease = match duration {
        None => chrono::Duration::seconds(60),
        Some(d) => convert::duration("lease_duration", d)?,
    };
    if lease < chrono::Duration::seconds(1) || lease > chrono::Duration::hours(1) {
        return Err(ApiError::InvalidArgument("lease_duration: must be 1 s to 1 h".into()));
    }
    Ok(lease)
}

/// The credit one Dispatch request grants: 1 to `MAX_LEASE_ITEMS`.
fn stream_credit(credit: i32) -> ApiResult<u32> {
    u32::try_from(credit)
        .ok()
        .filter(|c| (1..=MAX_LEASE_ITEMS.unsigned_abs()).contains(c))
        .ok_or_else(|| ApiError::InvalidArgument(format!("credit: must be 1 to {MAX_LEASE_ITEMS}")))
}

/// A later Dispatch request: credit only.
fn more_credit(request: &pb::DispatchRequest) -> ApiResult<u32> {
    if !request.channels.is_empty() {
        return Err(ApiError::InvalidArgument("channels: only the first request names channels".into()));
    }
    if request.lease_duration.is_some() {
        return Err(ApiError::InvalidArgument("lease_duration: only the first request sets it".into()));
    }
    stream_credit(request.credit)
}

/// The files `tenant` may see: the law (no tenant) and its own policies,
/// never another tenant's (their names and paths are that tenant's business).
/// Each file says how far its holidays are confirmed and what is pending in
/// the year from `today`.
fn jurisdiction_infos(book: &RuleBook, tenant: &str, today: chrono::NaiveDate) -> pb::ListJurisdictionsResponse {
    let jurisdictions = book
        .jurisdictions()
        .iter()
        .filter(|j| j.tenant.as_deref().is_none_or(|t| t == tenant))
        .map(|j| {
            let coverage = coverage(j, today, DEFAULT_LOOKAHEAD_DAYS);
            pb::JurisdictionInfo {
                code: j.code.to_string(),
                name: j.name.clone(),
                tenant: j.tenant.clone().unwrap_or_default(),
                file: j.file.to_string(),
                version_hash: j.hash.clone(),
                versions: j.versions.iter().map(|v| v.effective_from.to_string()).collect(),
                confirmed_through: coverage.horizon.map(|h| h.through.to_string()).unwrap_or_default(),
                pending_decisions: coverage
                    .pending
                    .into_iter()
                    .map(|p| pb::PendingDecision {
                        rule: p.rule.to_string(),
                        name: p.name.to_string(),
                        date: p.base.to_string(),
                        closed_days: p.days.iter().map(ToString::to_string).collect(),
                        under: p.under.to_string(),
                    })
                    .collect(),
            }
        })
        .collect();
    pb::ListJurisdictionsResponse { jurisdictions }
}

#[tonic::async_trait]
impl pb::rules_service_server::RulesService for Api {
    async fn list_jurisdictions(
        &self,
        request: Request<pb::ListJurisdictionsRequest>,
    ) -> Result<Response<pb::ListJurisdictionsResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, RULE_READERS).await?;
                Ok(jurisdiction_infos(&self.app.rules(), &caller.tenant, self.app.clock.now().date_naive()))
            }
            .await,
        )
    }

    async fn calendar(&self, request: Request<pb::CalendarRequest>) -> Result<Response<pb::CalendarResponse>, Status> {
        answer(
            async move {
                authenticate(&self.app, &self.keys, &request, RULE_READERS).await?;
                let req = request.get_ref();
                if !(1900..=2200).contains(&req.year) {
                    return Err(ApiError::InvalidArgument("year: must be 1900 to 2200".into()));
                }
                let days = crate::officer::calendar_holidays(&self.app.rules(), &req.code, req.year)
                    // An unknown code is a bad argument, as in Submit.
                    .map_err(|e| ApiError::InvalidArgument(format!("code: {e}")))?;
                let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                let holidays = days
                    .iter()
                    .map(|d| pb::Holiday {
                        date: text(&d["date"]),
                        name: text(&d["name"]),
                        rule: text(&d["rule"]),
                        provisional: d["provisional"].as_bool().unwrap_or(false),
                    })
                    .collect();
                Ok(pb::CalendarResponse { holidays })
            }
            .await,
        )
    }

    async fn reload(&self, request: Request<pb::ReloadRequest>) -> Result<Response<pb::ReloadResponse>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, OPERATORS).await?;
                let dir = self.rules_dir.clone();
                let loaded = tokio::task::spawn_blocking(move || RuleBook::load_dir(&dir))
                    .await
                    .map_err(|e| ApiError::Internal(format!("reload task failed: {e}")))?;
                match loaded {
                    Ok(book) => {
                        let files = book.jurisdictions().len();
                        let infos = jurisdiction_infos(&book, &caller.tenant, self.app.clock.now().date_naive());
                        self.app.replace_rules(book, &caller.tenant, &caller.key_prefix).await?;
                        tracing::info!(files, by_key = %caller.key_prefix, "rules reloaded");
                        Ok(pb::ReloadResponse { jurisdictions: infos.jurisdictions })
                    }
                    Err(problems) => {
                        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                        Err(ApiError::FailedPrecondition(format!(
                            "the rules directory has problems; the rules in force are unchanged:\n{}",
                            text.join("\n")
                        )))
                    }
                }
            }
            .await,
        )
    }
}

fn audit_event_to_pb(row: &crate::audit::AuditRow) -> ApiResult<pb::AuditEvent> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let key = format!("({}, {})", row.event.tenant, row.seq);
    Ok(pb::AuditEvent {
        sequence: row.seq,
        event_time: Some(convert::stored_instant("audit_log", &key, row.event.at)?),
        debtor_local_time: text(&row.event.local_time),
        time_zone: text(&row.event.time_zone),
        tenant: row.event.tenant.clone(),
        intent_id: text(&row.event.intent_id),
        debtor_id: text(&row.event.debtor_id),
        debt_id: text(&row.event.debt_id),
        channel: row.event.channel.map_or(pb::Channel::Unspecified, convert::channel_to_pb) as i32,
        jurisdiction: text(&row.event.jurisdiction),
        event: convert::audit_kind_to_pb(row.event.kind) as i32,
        decision: text(&row.event.decision),
        reason_codes: text(&row.event.reason_codes),
        rule_ids: text(&row.event.rule_ids),
        citations: text(&row.event.citations),
        rules_version: text(&row.event.rules_version),
        outcome: row.event.outcome.map(|o| o.to_string()).unwrap_or_default(),
        detail: row.event.detail.clone(),
        hash: row.hash.clone(),
        previous_hash: row.prev_hash.clone(),
    })
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for Api {
    type ExportStream = tokio_stream::wrappers::ReceiverStream<Result<pb::ExportResponse, Status>>;

    async fn export(&self, request: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        answer(
            async move {
                let caller = authenticate(&self.app, &self.keys, &request, &[Role::Auditor]).await?;
                let req = request.get_ref();
                let from = req.from.as_ref().map(|t| convert::timestamp("from", t)).transpose()?.unwrap_or_default();
                let to = match &req.to {
                    Some(t) => convert::timestamp("to", t)?,
                    None => self.app.clock.now() + chrono::Duration::days(1),
                };
                if to <= from {
                    return Err(ApiError::InvalidArgument("to: must be after from".into()));
                }
                let channel = match req.channel {
                    0 => None,
                    c => Some(convert::channel("channel", c)?),
                };
                let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
                let filter = crate::app::audit::ExportFilter {
                    tenant: caller.tenant,
                    from,
                    to,
                    debtor_id: nonempty(&req.debtor_id),
                    jurisdiction: nonempty(&req.jurisdiction),
                    channel,
                };
                let resume = convert::parse_resume_token(&req.resume_token)?;
                let store = self.app.store.clone();
                let (sender, receiver) = tokio::sync::mpsc::channel::<Result<pb::ExportResponse, Status>>(256);
                tokio::spawn(async move {
                    let mut cursor = match crate::app::audit::ExportCursor::open(&store, filter, resume).await {
                        Ok(cursor) => cursor,
                        Err(e) => {
                            let _ = sender.send(Err(Status::from(ApiError::from(e)))).await;
                            return;
                        }
                    };
                    loop {
                        match cursor.next_page().await {
                            Ok(Some(rows)) => {
                                for row in &rows {
                                    let event = audit_event_to_pb(row)
                                        .map(|e| pb::ExportResponse {
                                            event: Some(e),
                                            resume_token: convert::resume_token(row),
                                        })
                                        .map_err(Status::from);
                                    let unreadable = event.is_err();
                                    if sender.send(event).await.is_err() || unreadable {
                                        return; // the client went away, or the stream ends on the error
                                    }
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = sender.send(Err(Status::from(ApiError::from(e)))).await;
                                return;
                            }
                        }
                        if let Some(broken) = cursor.broken() {
                            let _ = sender
                                .send(Err(Status::from(ApiError::from(AppError::DataLoss(format!(
                                    "audit chain broken at sequence {}: {}",
                                    broken.seq, broken.reason
                                ))))))
                                .await;
                            return;
                        }
                    }
                });
                Ok(tokio_stream::wrappers::ReceiverStream::new(receiver))
            }
            .await,
        )
    }
}

/// A handler's result as tonic answers it (the one `From<ApiError> for Status`).
fn answer<T>(result: ApiResult<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

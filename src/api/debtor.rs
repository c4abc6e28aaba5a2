//! What the API says about the individual debtor, converted both ways with
//! validation (every error names the field): contact points, designations,
//! consents, preference statements and recorded contacts.

use chrono::{DateTime, NaiveDate, Utc};

use super::convert::{channel, channel_to_pb, id, timestamp, to_timestamp};
use super::error::{ApiError, ApiResult, invalid};
use super::pb;
use crate::domain::{
    AckOutcome, Channel, Consent, ContactEvent, ContactPoint, ContactPointKind, DayOfWeek, Designated, Designation,
    Initiator, TimeRange,
};
use crate::preferences::{ConsentTerms, PreferenceRecord, Statements};

/// Most designations or consents one request may state.
const MAX_STATEMENTS: usize = 64;

fn kind(field: &str, value: i32) -> ApiResult<ContactPointKind> {
    use pb::ContactPointKind as Pb;
    match Pb::try_from(value) {
        Ok(Pb::ResidencePhone) => Ok(ContactPointKind::ResidencePhone),
        Ok(Pb::PersonalMobile) => Ok(ContactPointKind::PersonalMobile),
        Ok(Pb::WorkPhone) => Ok(ContactPointKind::WorkPhone),
        Ok(Pb::OtherPhone) => Ok(ContactPointKind::OtherPhone),
        Ok(Pb::HomeAddress) => Ok(ContactPointKind::HomeAddress),
        Ok(Pb::WorkAddress) => Ok(ContactPointKind::WorkAddress),
        Ok(Pb::Email) => Ok(ContactPointKind::Email),
        Ok(Pb::MessagingAccount) => Ok(ContactPointKind::MessagingAccount),
        _ => Err(invalid(field, "must be a contact point kind (CONTACT_POINT_KIND_WORK_PHONE, …)")),
    }
}

fn kind_to_pb(kind: ContactPointKind) -> pb::ContactPointKind {
    use pb::ContactPointKind as Pb;
    match kind {
        ContactPointKind::ResidencePhone => Pb::ResidencePhone,
        ContactPointKind::PersonalMobile => Pb::PersonalMobile,
        ContactPointKind::WorkPhone => Pb::WorkPhone,
        ContactPointKind::OtherPhone => Pb::OtherPhone,
        ContactPointKind::HomeAddress => Pb::HomeAddress,
        ContactPointKind::WorkAddress => Pb::WorkAddress,
        ContactPointKind::Email => Pb::Email,
        ContactPointKind::MessagingAccount => Pb::MessagingAccount,
    }
}

/// A contact point; with `channel`, one that channel can reach.
pub fn contact_point(field: &str, value: &pb::ContactPoint, channel: Option<Channel>) -> ApiResult<ContactPoint> {
    let kind = kind(&format!("{field}.kind"), value.kind)?;
    let point_id = if value.id.is_empty() { None } else { Some(id(&format!("{field}.id"), &value.id)?) };
    if let Some(channel) = channel.filter(|c| !kind.reachable_by(*c)) {
        let can: Vec<&str> = kind.channels().iter().map(|c| c.as_str()).collect();
        return Err(invalid(
            &format!("{field}.kind"),
            format!("a {channel} contact cannot go to a {kind} (channels that can: {})", can.join(", ")),
        ));
    }
    Ok(ContactPoint { kind, id: point_id })
}

pub fn contact_point_to_pb(point: &ContactPoint) -> pb::ContactPoint {
    pb::ContactPoint { kind: kind_to_pb(point.kind) as i32, id: point.id.clone().unwrap_or_default() }
}

fn day(field: &str, value: i32) -> ApiResult<DayOfWeek> {
    use pb::DayOfWeek as Pb;
    match Pb::try_from(value) {
        Ok(Pb::Monday) => Ok(DayOfWeek::Mon),
        Ok(Pb::Tuesday) => Ok(DayOfWeek::Tue),
        Ok(Pb::Wednesday) => Ok(DayOfWeek::Wed),
        Ok(Pb::Thursday) => Ok(DayOfWeek::Thu),
        Ok(Pb::Friday) => Ok(DayOfWeek::Fri),
        Ok(Pb::Saturday) => Ok(DayOfWeek::Sat),
        Ok(Pb::Sunday) => Ok(DayOfWeek::Sun),
        _ => Err(invalid(field, "must be a day (DAY_OF_WEEK_MONDAY, …)")),
    }
}

fn day_to_pb(day: DayOfWeek) -> pb::DayOfWeek {
    use pb::DayOfWeek as Pb;
    match day {
        DayOfWeek::Mon => Pb::Monday,
        DayOfWeek::Tue => Pb::Tuesday,
        DayOfWeek::Wed => Pb::Wednesday,
        DayOfWeek::Thu => Pb::Thursday,
        DayOfWeek::Fri => Pb::Friday,
        DayOfWeek::Sat => Pb::Saturday,
        DayOfWeek::Sun => Pb::Sunday,
    }
}

fn hours(field: &str, value: &str) -> ApiResult<TimeRange> {
    TimeRange::parse(value).map_err(|e| invalid(field, e))
}

fn date(field: &str, value: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| invalid(field, format!("{value:?} is not a date (expected YYYY-MM-DD)")))
}

fn channels(field: &str, values: &[i32]) -> ApiResult<Vec<Channel>> {
    values.iter().enumerate().map(|(i, c)| channel(&format!("{field}[{i}]"), *c)).collect()
}

fn channels_to_pb(channels: &[Channel]) -> Vec<i32> {
    channels.iter().map(|c| channel_to_pb(*c) as i32).collect()
}

/// One designation with its id.
fn designation(field: &str, value: &pb::Designation) -> ApiResult<(String, Designation)> {
    use pb::designation::Kind;
    let designation_id = id(&format!("{field}.id"), &value.id)?;
    let channels = channels(&format!("{field}.channels"), &value.channels)?;
    let designation = match &value.kind {
        None => {
            return Err(invalid(
                field,
                "names no kind: set inconvenient_times, inconvenient_dates, waking_hours or inconvenient_contact_point",
            ));
        }
        Some(Kind::InconvenientTimes(times)) => {
            let at = |name: &str| format!("{field}.inconvenient_times.{name}");
            if times.days.is_empty() || times.hours.is_empty() {
                return Err(invalid(&at("days"), "needs at least one day and one range in hours"));
            }
            Designation::InconvenientTimes {
                days: times
                    .days
                    .iter()
                    .enumerate()
                    .map(|(i, d)| day(&at(&format!("days[{i}]")), *d))
                    .collect::<ApiResult<_>>()?,
                hours: times
                    .hours
                    .iter()
                    .enumerate()
                    .map(|(i, h)| hours(&at(&format!("hours[{i}]")), h))
                    .collect::<ApiResult<_>>()?,
                channels,
            }
        }
        Some(Kind::InconvenientDates(dates)) => {
            let from = date(&format!("{field}.inconvenient_dates.first_date"), &dates.first_date)?;
            let to = date(&format!("{field}.inconvenient_dates.last_date"), &dates.last_date)?;
            if to < from {
                return Err(invalid(
                    &format!("{field}.inconvenient_dates.last_date"),
                    format!("{to} is before first_date {from}"),
                ));
            }
            Designation::InconvenientDates { from, to, channels }
        }
        Some(Kind::WakingHours(waking)) => {
            Designation::WakingHours { hours: hours(&format!("{field}.waking_hours.hours"), &waking.hours)?, channels }
        }
        Some(Kind::InconvenientContactPoint(point)) => Designation::InconvenientContactPoint {
            contact_point: contact_point(&format!("{field}.inconvenient_contact_point"), point, None)?,
            channels,
        },
    };
    designation.check().map_err(|e| invalid(field, e))?;
    Ok((designation_id, designation))
}

fn designation_to_pb(designated: &Designated) -> pb::Designation {
    use pb::designation::Kind;
    let kind = match &designated.designation {
        Designation::InconvenientTimes { days, hours, .. } => Kind::InconvenientTimes(pb::InconvenientTimes {
            days: days.iter().map(|d| day_to_pb(*d) as i32).collect(),
            hours: hours.iter().map(TimeRange::as_written).collect(),
        }),
        Designation::InconvenientDates { from, to, .. } => {
            Kind::InconvenientDates(pb::InconvenientDates { first_date: from.to_string(), last_date: to.to_string() })
        }
        Designation::WakingHours { hours, .. } => Kind::WakingHours(pb::WakingHours { hours: hours.as_written() }),
        Designation::InconvenientContactPoint { contact_point, .. } => {
            Kind::InconvenientContactPoint(contact_point_to_pb(contact_point))
        }
    };
    pb::Designation {
        id: designated.id.clone(),
        kind: Some(kind),
        channels: channels_to_pb(designated.designation.channels()),
        source: designated.source.clone(),
        said_at: designated.at.map(to_timestamp),
    }
}

/// One consent with its id; `from` defaults to `at`.
fn consent(field: &str, value: &pb::Consent, at: DateTime<Utc>) -> ApiResult<(String, ConsentTerms)> {
    let consent_id = id(&format!("{field}.id"), &value.id)?;
    if value.revoked_at.is_some() || !value.source.is_empty() {
        return Err(invalid(field, "revoked_at and source are output only: revoke with revoke_consents"));
    }
    let from = value.from.as_ref().map(|t| timestamp(&format!("{field}.from"), t)).transpose()?.unwrap_or(at);
    if from < at {
        return Err(invalid(
            &format!("{field}.from"),
            format!(
                "{} is before the statement's at {}: a consent covers only contacts after it is given",
                from.to_rfc3339(),
                at.to_rfc3339()
            ),
        ));
    }
    if value.channels.is_empty() {
        return Err(invalid(&format!("{field}.channels"), "name the channels the debtor consented to (at least one)"));
    }
    let until = value.until.as_ref().map(|t| timestamp(&format!("{field}.until"), t)).transpose()?;
    if let Some(until) = until.filter(|u| *u <= from) {
        return Err(invalid(
            &format!("{field}.until"),
            format!("{} is not after from {}", until.to_rfc3339(), from.to_rfc3339()),
        ));
    }
    let terms = ConsentTerms {
        channels: channels(&format!("{field}.channels"), &value.channels)?,
        written: value.written,
        from: from.timestamp_millis(),
        until: until.map(|u| u.timestamp_millis()),
        revoked_at: None,
    };
    Ok((consent_id, terms))
}

fn consent_to_pb(consent: &Consent) -> pb::Consent {
    pb::Consent {
        id: consent.id.clone(),
        channels: channels_to_pb(&consent.channels),
        from: Some(to_timestamp(consent.from)),
        until: consent.until.map(to_timestamp),
        revoked_at: consent.revoked_at.map(to_timestamp),
        source: consent.source.clone(),
        written: consent.written,
    }
}

fn ids(field: &str, values: &[String]) -> ApiResult<Vec<String>> {
    values.iter().enumerate().map(|(i, v)| id(&format!("{field}[{i}]"), v)).collect()
}

/// The designations and consents of a SetPreferences request, into `statements`.
pub fn debtor_statements(
    req: &pb::SetPreferencesRequest,
    at: DateTime<Utc>,
    statements: &mut Statements,
) -> ApiResult<()> {
    for (field, count) in [
        ("designations", req.designations.len()),
        ("revoke_designations", req.revoke_designations.len()),
        ("consents", req.consents.len()),
        ("revoke_consents", req.revoke_consents.len()),
    ] {
        if count > MAX_STATEMENTS {
            return Err(invalid(field, format!("at most {MAX_STATEMENTS} per request")));
        }
    }
    statements.designate = req
        .designations
        .iter()
        .enumerate()
        .map(|(i, d)| designation(&format!("designations[{i}]"), d))
        .collect::<ApiResult<_>>()?;
    statements.revoke_designations = ids("revoke_designations", &req.revoke_designations)?;
    statements.consent = req
        .consents
        .iter()
        .enumerate()
        .map(|(i, c)| consent(&format!("consents[{i}]"), c, at))
        .collect::<ApiResult<_>>()?;
    statements.revoke_consents = ids("revoke_consents", &req.revoke_consents)?;
    let designated = statements.designate.iter().map(|(id, _)| id);
    if let Some(both) = designated.clone().find(|id| statements.revoke_designations.contains(id)) {
        return Err(invalid(
            "revoke_designations",
            format!("{both:?} is also designated in this request; state one or the other"),
        ));
    }
    let consented = statements.consent.iter().map(|(id, _)| id);
    if let Some(both) = consented.clone().find(|id| statements.revoke_consents.contains(id)) {
        return Err(invalid(
            "revoke_consents",
            format!("{both:?} is also given in this request; state one or the other"),
        ));
    }
    Ok(())
}

/// The designations in force and the consents on record.
pub fn debtor_view(record: &PreferenceRecord) -> (Vec<pb::Designation>, Vec<pb::Consent>) {
    let effective = record.effective();
    (
        effective.designations.iter().map(designation_to_pb).collect(),
        effective.consents.iter().map(consent_to_pb).collect(),
    )
}

/// A RecordContact request: the event and the outcome it was reported with.
pub fn recorded_contact(
    req: &pb::RecordContactRequest,
    now: DateTime<Utc>,
) -> ApiResult<(String, ContactEvent, AckOutcome, String)> {
    let debtor_id = id("debtor_id", &req.debtor_id)?;
    let source = id("source", &req.source)?;
    let debt_id = if req.debt_id.is_empty() { None } else { Some(id("debt_id", &req.debt_id)?) };
    let channel = channel("channel", req.channel)?;
    let contact_point =
        req.contact_point.as_ref().map(|p| contact_point("contact_point", p, Some(channel))).transpose()?;
    let initiator = match pb::Initiator::try_from(req.initiator) {
        Ok(pb::Initiator::Collector) => Initiator::Collector,
        Ok(pb::Initiator::Debtor) => Initiator::Debtor,
        _ => return Err(invalid("initiator", "must be INITIATOR_DEBTOR or INITIATOR_COLLECTOR")),
    };
    let outcome = match super::convert::ack_outcome(req.outcome) {
        Ok(AckOutcome::WrongParty | AckOutcome::OptedOut) => {
            return Err(invalid(
                "outcome",
                "a recorded contact is SENT, DELIVERED, FAILED, NO_ANSWER or CONVERSATION; record a wrong party or an opt-out with SetPreferences",
            ));
        }
        other => other?,
    };
    let at = req.at.as_ref().map(|t| timestamp("at", t)).transpose()?.unwrap_or(now);
    if at > now + chrono::Duration::minutes(5) {
        return Err(ApiError::InvalidArgument(format!(
            "at: {} is in the future (the server's clock says {}); record a contact when it happened",
            at.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    let event = ContactEvent { channel, at, outcome: outcome.history_outcome(), debt_id, contact_point, initiator };
    Ok((debtor_id, event, outcome, source))
}

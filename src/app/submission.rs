//! An intent as submitted, and its stored (canonical JSON) form.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{AppError, AppResult};
use crate::domain::Intent;
use crate::intent_json::{intent_to_json, parse_intent};
use crate::store::IntentRow;

/// An intent as submitted: what the engine reads plus what adapters need.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub intent: Intent,
    pub priority: i32,
    pub payload: BTreeMap<String, String>,
}

impl Submission {
    /// Canonical JSON, stored as the intent's body.
    pub fn to_json(&self) -> String {
        json!({"intent": intent_to_json(&self.intent), "priority": self.priority, "payload": self.payload}).to_string()
    }

    /// Reads a stored body back; what does not parse (a priority included) is an error.
    pub fn from_json(body: &str) -> Result<Submission, String> {
        let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let intent = parse_intent(&value["intent"]).map_err(|e| e.to_string())?.intent;
        let priority = value["priority"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| format!("priority {} is not a 32-bit integer", value["priority"]))?;
        let payload = serde_json::from_value(value["payload"].clone()).map_err(|e| e.to_string())?;
        Ok(Submission { intent, priority, payload })
    }

    /// The submission an intent row stores; an unreadable body is an
    /// `Unreadable` error naming the row.
    pub fn of_row(row: &IntentRow) -> AppResult<Submission> {
        Submission::from_json(&row.body).map_err(|why| {
            AppError::unreadable(
                "intents",
                format!("({}, {})", row.tenant, row.intent_id),
                format!("stored intent is unreadable: {why}"),
            )
        })
    }
}

//! An intent as submitted, and its stored (canonical JSON) form.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{AppError, AppResult};
use crate::domain::Intent;
use crate::intent_json::{intent_to_json, parse_intent};

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

    /// Reads a stored body back.
    pub fn from_json(body: &str) -> AppResult<Submission> {
        let corrupt = |e: String| AppError::FailedPrecondition(format!("stored intent is unreadable: {e}"));
        let value: Value = serde_json::from_str(body).map_err(|e| corrupt(e.to_string()))?;
        let (intent, _) = parse_intent(&value["intent"]).map_err(|e| corrupt(e.to_string()))?;
        let priority = value["priority"].as_i64().and_then(|p| i32::try_from(p).ok()).unwrap_or_default();
        let payload = serde_json::from_value(value["payload"].clone()).map_err(|e| corrupt(e.to_string()))?;
        Ok(Submission { intent, priority, payload })
    }
}

//! `safety_check`: personal data and secrets in model outputs (work in progress).

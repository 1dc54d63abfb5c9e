//! Assertions: deciding whether a model output passes a test.

pub mod safety;
pub mod similarity;
pub mod structure;

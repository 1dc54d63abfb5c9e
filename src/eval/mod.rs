//! Running test cases and judging model outputs.

pub mod assertions;

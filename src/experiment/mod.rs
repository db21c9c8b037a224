//! Experiments: arms of the study trained with several seeds and evaluated, and the report
//! that says which differences are larger than the seeds' own spread.

pub mod arm;
pub mod report;
pub mod stats;

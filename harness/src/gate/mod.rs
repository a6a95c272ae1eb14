//! The capacity gate's decisions, apart from any I/O: the bisection with confirmation
//! (`search`), the component saturated at a failing step (`saturation`), and the comparison
//! with a baseline gate record (`baseline`). `commands/gate/` runs the steps (each a
//! [`crate::plan::RunPlan`] through [`crate::run::run`]) and feeds their outcomes here.

pub mod baseline;
pub mod saturation;
pub mod search;

pub use search::{Probe, Search, SearchConfig};

//! The `harness` command line: parses and delegates to the library.
fn main() {}

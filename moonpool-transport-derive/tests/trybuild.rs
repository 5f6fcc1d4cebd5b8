//! Misuse of `#[service]` is a compile error that points at the offending item and says what to
//! do: one case per misuse under `tests/ui`, each with its expected message (`.stderr`). After
//! changing a message, regenerate with `TRYBUILD=overwrite` and review the diff.
#![allow(missing_docs)]

#[test]
fn test_misuse_is_a_compile_error_with_a_fix() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

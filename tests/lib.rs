//! The e2e package has no library code; its tests live in `e2e/`.

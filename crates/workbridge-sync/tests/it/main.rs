//! Sync kernel tests: each guarantee of the kernel, over the in-memory backend.

mod guarantees;
#[cfg(feature = "postgres")]
mod postgres;
mod stores;

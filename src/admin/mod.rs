//! The one admin path (DESIGN invariant 11): who is calling, and what they may do. Both facades
//! (gRPC, the Sentinel port) turn their credential into a [`Principal`] and ask [`authorize`];
//! nothing else decides whether a write is allowed.

pub mod authn;
mod principal;

pub use principal::{authorize, Action, Denied, Principal};

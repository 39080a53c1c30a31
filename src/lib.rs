//! sprat: a single-node, Kafka-compatible message broker.
//!
//! The request path mirrors Kafka's, with its layer names: a socket server ([`server`]) gives each
//! connection its own thread, which decodes requests ([`protocol`]) and runs the API layer
//! ([`server::apis`]); appends go over a bounded channel to the single `log-writer` thread
//! ([`writer`]), which owns the write side of every partition log ([`storage`]). Topics live in the
//! cluster metadata log ([`metadata`]).

pub mod broker;
pub mod cleaner;
pub mod config;
pub mod controller;
pub mod dynamic_config;
pub mod fd_budget;
pub mod group;
pub mod metadata;
pub mod metrics;
pub mod protocol;
pub mod quota;
pub mod security;
pub mod server;
pub mod storage;
pub mod txn;
pub mod writer;

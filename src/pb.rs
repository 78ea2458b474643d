//! The generated protobuf types and gRPC stubs for `proto/raftinel.proto`.

#![allow(clippy::all, clippy::pedantic)]

tonic::include_proto!("raftinel.v1");

/// Encoded file descriptors, for gRPC server reflection (grpcurl).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("raftinel_descriptor");

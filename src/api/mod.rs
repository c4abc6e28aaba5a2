//! The gRPC surface: generated `ventana.v1` types, conversions, and the
//! tonic services.

/// Generated protobuf and gRPC code for `ventana.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("ventana.v1");

    /// Encoded descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ventana_descriptor");
}

pub mod auth;
pub mod convert;
pub mod services;

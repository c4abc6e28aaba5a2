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
pub mod debtor;
pub mod error;
pub mod services;

use tonic::service::Routes;
use tonic_health::server::HealthReporter;

/// Ventana's four services (each limited to `limit`-byte messages), health
/// and reflection (v1 and v1alpha), as routes for the server. Health reports
/// the four as serving.
pub async fn routes(
    api: services::Api,
    limit: usize,
    health: &HealthReporter,
    health_service: tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) -> Result<Routes, tonic_reflection::server::Error> {
    use pb::audit_service_server::AuditServiceServer;
    use pb::contact_scheduler_service_server::ContactSchedulerServiceServer;
    use pb::dispatch_service_server::DispatchServiceServer;
    use pb::rules_service_server::RulesServiceServer;

    health.set_serving::<ContactSchedulerServiceServer<services::Api>>().await;
    health.set_serving::<DispatchServiceServer<services::Api>>().await;
    health.set_serving::<RulesServiceServer<services::Api>>().await;
    health.set_serving::<AuditServiceServer<services::Api>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok(Routes::new(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(
            ContactSchedulerServiceServer::new(api.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            DispatchServiceServer::new(api.clone()).max_decoding_message_size(limit).max_encoding_message_size(limit),
        )
        .add_service(
            RulesServiceServer::new(api.clone()).max_decoding_message_size(limit).max_encoding_message_size(limit),
        )
        .add_service(AuditServiceServer::new(api).max_decoding_message_size(limit).max_encoding_message_size(limit)))
}

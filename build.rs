//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed) and
//! writes the descriptor set used by gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds these at compile time.
    println!("cargo:rerun-if-changed=migrations");
    let descriptors = protox::compile(["ventana/v1/ventana.proto"], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("ventana_descriptor.bin"), descriptors.encode_to_vec())?;
    // google.rpc.Status (per-item errors) is tonic-types' own type.
    tonic_prost_build::configure().extern_path(".google.rpc", "::tonic_types").compile_fds(descriptors)?;
    // ventana-bench's echo baseline; it reuses the ventana.v1 messages.
    // The ventana.v1 files stay in the set (prost needs their messages to
    // derive the echo messages' traits); generated into their own folder so
    // the extern-path copy of ventana.v1 never replaces the library's.
    let echo = protox::compile(["ventana/bench/v1/echo.proto"], ["proto"])?;
    let echo_dir = out_dir.join("echo");
    std::fs::create_dir_all(&echo_dir)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".ventana.v1", "::ventana::api::pb")
        .extern_path(".google.rpc", "::tonic_types")
        .out_dir(&echo_dir)
        .compile_fds(echo)?;
    Ok(())
}

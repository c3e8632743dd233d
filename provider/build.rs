//! Generates the gRPC server stubs for the plugin protocol from `proto/` at build time.
//!
//! The `protoc` binary comes from the `protoc-bin-vendored` crate, so no system protoc is needed.
//! Only servers are generated: Terraform is the client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/tfplugin6.proto", "proto/plugin.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded, and tonic-prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}

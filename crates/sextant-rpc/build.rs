//! Compiles proto/ with protox (pure Rust), so a fresh machine builds without `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_root.join("sextant/v1/dns.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_root])?;
    tonic_prost_build::configure()
        .bytes(".sextant.v1")
        .compile_fds(descriptors)?;
    Ok(())
}

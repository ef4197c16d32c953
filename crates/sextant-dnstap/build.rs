//! Compiles proto/dnstap with protox (pure Rust), as sextant-rpc does its contract.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = proto_root.join("dnstap/dnstap.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_root])?;
    prost_build::Config::new()
        // The messages logged are `Bytes` already: moved in, not copied.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}

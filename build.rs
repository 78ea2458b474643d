//! Compiles proto/raftinel.proto with a vendored protoc, so protoc is never a system requirement.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = prost_build::Config::new();
    // $PROTOC still wins, for distributions that insist on their own.
    if std::env::var_os("PROTOC").is_none() {
        cfg.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("raftinel_descriptor.bin"))
        .compile_with_config(cfg, &["proto/raftinel.proto"], &["proto"])?;
    Ok(())
}

// Migrations are embedded at compile time: rebuild whenever one changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");

    // The PostgreSQL tests (tests/api) run when the build sees a server to run them on, or
    // in CI, where a missing server must fail them; otherwise they are reported as ignored,
    // with the reason, instead of passing without having run.
    println!("cargo:rerun-if-env-changed=TEST_POSTGRES_URL");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    let postgres_url = std::env::var("TEST_POSTGRES_URL").unwrap_or_default();
    if !postgres_url.trim().is_empty() || std::env::var_os("CI").is_some() {
        println!("cargo:rustc-cfg=postgres_tests");
    }
}

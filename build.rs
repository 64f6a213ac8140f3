// Migrations are embedded at compile time: rebuild whenever one changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

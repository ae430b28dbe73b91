//! The `attnjoule` command line. Library errors are typed; here they become anyhow messages.

mod cli;

fn main() {
    if let Err(e) = cli::main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

//! The `attnjoule` command line. Library errors are typed; here they become anyhow messages.
// Every line goes through cli::out (one rule for a closed pipe or a full disk).
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;

fn main() {
    let code = match cli::main() {
        Ok(()) => match cli::out::finish() {
            Ok(()) => 0,
            Err(e) => {
                cli::out::errln!("error: {e}");
                1
            }
        },
        Err(e) => {
            let _ = cli::out::finish();
            // One line whatever the message quotes (a path with a newline in it).
            cli::out::errln!("error: {}", attnjoule::error::one_line(&format!("{e:#}")));
            1
        }
    };
    std::process::exit(code);
}

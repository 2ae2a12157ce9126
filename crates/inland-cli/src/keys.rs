//! `inland keys`: the pseudonym key file. Each epoch's key applies from its `not_before`;
//! pseudonyms stop linking across epochs by design.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key file with one random key (refuses to overwrite an existing file).
    Generate {
        #[arg(long, default_value = ".inland/pseudonym-keys.toml")]
        file: PathBuf,
    },
    /// Add a new epoch whose key applies from `--from` (RFC 3339; default now).
    Rotate {
        #[arg(long, default_value = ".inland/pseudonym-keys.toml")]
        file: PathBuf,
        #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
        from: Option<SystemTime>,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { file } => {
            inland_anonymizer::keys::generate(&file)?;
            println!(
                "created {} (epoch 0); keep it in-country and out of logs",
                file.display()
            );
        }
        KeysCommand::Rotate { file, from } => {
            let epoch =
                inland_anonymizer::keys::rotate(&file, from.unwrap_or_else(SystemTime::now))?;
            println!("added epoch {epoch} to {}", file.display());
        }
    }
    Ok(())
}

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inland_core::Vin;
use inland_tls::DevCerts;

#[derive(Args)]
pub struct DevCertsArgs {
    /// Directory to write ca.pem/ca.key, server.pem/server.key, operator.pem/.key and
    /// vehicles/VIN.pem/.key.
    #[arg(long, default_value = ".inland/certs")]
    pub dir: PathBuf,
    /// Names the gateway certificate is valid for.
    #[arg(long = "server-name", default_values = ["localhost", "127.0.0.1"])]
    pub server_names: Vec<String>,
    /// VINs to issue vehicle certificates for.
    #[arg(long = "vin")]
    pub vins: Vec<Vin>,
}

pub fn run(args: DevCertsArgs) -> anyhow::Result<()> {
    let files = DevCerts::new(&args.dir);
    files
        .generate(&args.server_names, &args.vins)
        .with_context(|| format!("generating dev certificates in {}", args.dir.display()))?;
    println!("fleet CA:      {}", files.ca_cert().display());
    println!(
        "gateway cert:  {} (for {})",
        files.server_cert().display(),
        args.server_names.join(", ")
    );
    println!(
        "operator cert: {} ({}: records consent for any vehicle with `inland consent`)",
        files.operator_cert().display(),
        inland_tls::DEV_OPERATOR
    );
    for vin in &args.vins {
        println!(
            "vehicle {}: {}",
            vin.as_str(),
            files.vehicle_cert(vin).display()
        );
    }
    Ok(())
}

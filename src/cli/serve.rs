//! `mathlake serve`.

use super::Cli;
use crate::error::Result;
use crate::serve::{self, ServeSpec};

pub async fn run(cli: &Cli, spec: &ServeSpec) -> Result<()> {
    let served = serve::load(spec).await?;
    let name = served.name.clone();
    let config = served.model.config.clone();
    let json = cli.json;
    serve::serve(spec, served, |address| {
        // The first line on stdout, so that a script or test can wait for it.
        if json {
            println!("{}", serde_json::json!({"serving": name, "address": format!("http://{address}/v1")}));
        } else {
            println!(
                "serving {name} ({} layers, {} hidden, context {}) at http://{address}/v1",
                config.num_hidden_layers, config.hidden_size, config.max_position_embeddings
            );
        }
    })
    .await
}

//! What every command gets from the top: the global `--cluster` and `--lab`
//! flags, and from them the cluster file, the cluster and a client.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::client::Client;
use crate::cluster::{self, Cluster};

#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Cluster file (default: the lab's, see --lab).
    #[arg(long, global = true, env = "HERD_CLUSTER")]
    pub cluster: Option<PathBuf>,
    /// Lab name.
    #[arg(long, global = true, env = "HERD_LAB", default_value = "herd")]
    pub lab: String,
}

impl GlobalArgs {
    /// `--cluster`, else the lab's cluster file.
    pub fn cluster_file(&self) -> PathBuf {
        cluster::cluster_file(self.cluster.as_deref(), &self.lab)
    }

    pub fn load_cluster(&self) -> Result<Cluster> {
        Cluster::load(&self.cluster_file())
    }

    pub fn client(&self) -> Result<Client> {
        Client::new(self.load_cluster()?)
    }
}

//! The notification pipeline the worker and the demo run: the notification
//! service with its channels and stores, attached to a messaging service.

use messaging_core::MessagingService;

use crate::config::Config;

/// The notification side of the worker.
pub(crate) struct Pipeline {}

impl Pipeline {
    /// Builds the channels and stores the configuration names.
    pub(crate) async fn from_config(config: &Config) -> anyhow::Result<Self> {
        let _ = config;
        anyhow::bail!("the notification pipeline is not integrated yet (crate notification)")
    }

    /// Subscribes the event listeners and the notification request dispatchers.
    pub(crate) async fn attach(&self, service: &MessagingService) -> anyhow::Result<()> {
        let _ = service;
        Ok(())
    }

    /// Closes the store connections.
    pub(crate) async fn close(self) {}
}

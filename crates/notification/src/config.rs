/// Settings of the [`NotificationService`](crate::NotificationService).
///
/// ```
/// use notification::NotificationConfig;
/// let config = NotificationConfig::default().with_batch_concurrency(32);
/// assert_eq!(config.batch_concurrency, 32);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotificationConfig {
    /// Sends of one batch in flight at once. Match it to the SMTP pool size
    /// ([`SmtpConfig::pool_max_size`](crate::channel::SmtpConfig::pool_max_size))
    /// for batch email: more only waits for a connection.
    pub batch_concurrency: usize,
}

impl Default for NotificationConfig {
    /// 10 sends at once (the default SMTP pool size).
    fn default() -> Self {
        Self {
            batch_concurrency: 10,
        }
    }
}

impl NotificationConfig {
    /// Sets the batch concurrency (at least 1).
    pub fn with_batch_concurrency(mut self, concurrency: usize) -> Self {
        self.batch_concurrency = concurrency.max(1);
        self
    }
}

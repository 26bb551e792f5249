//! Values read straight from Redis: `STATE_PREFIX:key`, or `key`.

use redis::AsyncCommands;

use super::{Backend, BackendFuture};

pub struct RedisBackend {
    pub url: String,
    pub prefix: String,
}

impl RedisBackend {
    fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}:{key}", self.prefix)
        }
    }
}

impl Backend for RedisBackend {
    fn describe(&self) -> String {
        format!("{} (keys {})", self.url, self.name("…"))
    }

    fn read(&self, key: &str) -> BackendFuture<'_, Option<Vec<u8>>> {
        let name = self.name(key);
        Box::pin(async move {
            let client = redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
            let mut connection = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.url))?;
            connection
                .get::<_, Option<Vec<u8>>>(&name)
                .await
                .map_err(|e| format!("GET {name}: {e}"))
        })
    }
}

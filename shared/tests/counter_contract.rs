//! The `CounterStore` contract suite against both adapters: `SqliteStore` on a file in a fresh
//! temporary directory, and `DynamoMessageStore` on a fresh table in DynamoDB Local.
//!
//! DynamoDB Local is started by scripts/test.sh (scripts/dynamodb-local.mjs), which exports
//! `SMSRELAY_TEST_DYNAMODB_URL`. Without it the DynamoDB tests fail: a contract test never skips.

mod sqlite {
    use smsrelay::adapters::sqlite_store::SqliteStore;

    smsrelay::counter_contract!(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("smsrelay.db")).expect("open SQLite store");
        (store, dir)
    });
}

#[cfg(feature = "aws")]
mod dynamodb {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use smsrelay::adapters::dynamodb::DynamoMessageStore;

    const URL_VAR: &str = "SMSRELAY_TEST_DYNAMODB_URL";

    /// A store on a new, uniquely named table in DynamoDB Local.
    async fn fresh_store() -> DynamoMessageStore {
        let Ok(url) = std::env::var(URL_VAR) else {
            panic!("{URL_VAR} is not set: start DynamoDB Local with scripts/test.sh or set {URL_VAR}");
        };
        let config = aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "smsrelay-contract-tests",
            ))
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let table = format!("smsrelay-counters-{}", ulid::Ulid::new().to_string().to_lowercase());
        DynamoMessageStore::create_table(&client, &table)
            .await
            .expect("create a fresh table in DynamoDB Local");
        DynamoMessageStore::new(client, table)
    }

    smsrelay::counter_contract!(fresh_store());
}

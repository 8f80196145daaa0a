//! The `MessageStore` contract suite against both adapters: `SqliteStore` on a file in a fresh
//! temporary directory, and `DynamoMessageStore` on a fresh table in DynamoDB Local.
//!
//! DynamoDB Local is started by scripts/test.sh (scripts/dynamodb-local.mjs), which exports
//! `SMSRELAY_TEST_DYNAMODB_URL`. Without it the DynamoDB tests fail: a contract test never skips.

mod sqlite {
    use smsrelay::adapters::sqlite::SqliteStore;

    smsrelay::store_contract!(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("smsrelay.db")).expect("open SQLite store");
        (store, dir)
    });
}

#[cfg(feature = "aws")]
mod dynamodb {
    smsrelay::store_contract!(smsrelay::testing::dynamodb_local_store());
}

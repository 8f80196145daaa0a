//! The `BatchStore` contract suite against both adapters: `SqliteStore` on a file in a fresh
//! temporary directory, and `DynamoMessageStore` on a fresh table in DynamoDB Local (started by
//! scripts/test.sh; without `SMSRELAY_TEST_DYNAMODB_URL` the DynamoDB tests fail, never skip).

mod sqlite {
    use smsrelay::adapters::sqlite::SqliteStore;

    smsrelay::batch_contract!(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("smsrelay.db")).expect("open SQLite store");
        (store, dir)
    });
}

#[cfg(feature = "aws")]
mod dynamodb {
    smsrelay::batch_contract!(smsrelay::testing::dynamodb_local_store());
}

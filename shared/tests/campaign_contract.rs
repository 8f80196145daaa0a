//! The `CampaignStore` contract suite against both adapters: `SqliteStore` on a file in a fresh
//! temporary directory, and (feature `aws`) the DynamoDB adapter on a fresh table in DynamoDB
//! Local (`SMSRELAY_TEST_DYNAMODB_URL`, started by scripts/test.sh; never skipped).

mod sqlite {
    use smsrelay::adapters::sqlite::SqliteStore;

    smsrelay::campaign_contract!(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(&dir.path().join("smsrelay.db")).expect("open SQLite store");
        (std::sync::Arc::new(store), dir)
    });
}

#[cfg(feature = "aws")]
mod dynamodb {
    smsrelay::campaign_contract!(async { std::sync::Arc::new(smsrelay::testing::dynamodb_local_store().await) });
}

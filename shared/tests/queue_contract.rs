//! The job queue contract (`smsrelay::queue_contract!`) against both adapters: `SqliteJobQueue`
//! in memory, and `SqsJobQueue` on the moto server named by `SMSRELAY_TEST_SQS_URL` (one fresh
//! queue pair per test). Needs feature `testing`, and `aws` for the SQS half.
#![cfg(feature = "testing")]

mod sqlite {
    use smsrelay::adapters::sqlite::SqliteJobQueue;
    use smsrelay::adapters::system_clock::SystemClock;
    use smsrelay::testing::queue_contract::MAX_RECEIVES;
    use std::sync::Arc;

    fn make() -> SqliteJobQueue {
        SqliteJobQueue::open_in_memory(MAX_RECEIVES, Arc::new(SystemClock)).expect("in-memory queue")
    }

    smsrelay::queue_contract!(async { make() });
}

#[cfg(feature = "aws")]
mod sqs {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_sqs::Client;
    use smsrelay::adapters::sqs_queue::{create_queue_pair, SqsJobQueue};
    use smsrelay::ports::JobQueue;
    use smsrelay::testing::queue_contract::MAX_RECEIVES;
    use std::time::Duration;
    use tokio::time::Instant;

    /// A client for the moto server the test script started; no server is a failure, not a skip.
    fn client() -> Client {
        let endpoint = std::env::var("SMSRELAY_TEST_SQS_URL").unwrap_or_else(|_| {
            panic!(
                "SMSRELAY_TEST_SQS_URL is not set: the SQS queue contract needs a moto server \
                 (`moto_server -H 127.0.0.1 -p PORT`, started by scripts/test.sh); \
                 set SMSRELAY_TEST_SQS_URL=http://127.0.0.1:PORT"
            )
        });
        let config = aws_sdk_sqs::config::Builder::new()
            .http_client(smsrelay::wiring::aws_http_client())
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "smsrelay-tests"))
            .build();
        Client::from_conf(config)
    }

    /// A fresh queue pair with a unique name; returns the client too, for raw calls.
    async fn make_with_client() -> (SqsJobQueue, Client, String) {
        let client = client();
        let name = format!("smsrelay-test-{}", ulid::Ulid::new().to_string().to_lowercase());
        let (url, dlq_url) = create_queue_pair(&client, &name, MAX_RECEIVES)
            .await
            .expect("create the queue pair on moto");
        (
            SqsJobQueue::new(client.clone(), url.clone(), Some(dlq_url)),
            client,
            url,
        )
    }

    async fn make() -> SqsJobQueue {
        make_with_client().await.0
    }

    smsrelay::queue_contract!(make());

    #[tokio::test]
    async fn malformed_body_is_skipped_and_redriven_to_the_dead_letter_queue() {
        // Given a message that is not a job
        let (queue, client, url) = make_with_client().await;
        client
            .send_message()
            .queue_url(&url)
            .message_body("not a job")
            .send()
            .await
            .expect("send raw message");

        // When it is received until it runs out of receives, then it is never returned and
        // ends in the DLQ
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = queue.receive(10, Duration::from_secs(1)).await.expect("receive");
            assert!(got.is_empty(), "a malformed body was returned: {got:?}");
            let stats = queue.stats().await.expect("stats");
            if stats.dead == 1 {
                assert_eq!(stats.pending, 0);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "malformed message not dead-lettered: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test]
    async fn queue_without_a_dead_letter_url_reports_zero_dead() {
        let (_, client, url) = make_with_client().await;
        let queue = SqsJobQueue::new(client, url, None);
        assert_eq!(queue.stats().await.expect("stats").dead, 0);
    }
}

//! The DynamoDB table itself: `migrate` creates it with the store's schema
//! and refuses, without touching it, a table of the same name that is not
//! the store's.
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use myloware::store::prelude::*;
use myloware::store::{DynamoDbStore, StoreError};

#[tokio::test]
async fn migrate_refuses_a_table_with_another_schema() {
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let config = emulator.sdk.clone();
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("mwt-other-{}", uuid::Uuid::new_v4().simple());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create a foreign table");

    let store = DynamoDbStore::new(&config, table.as_str());
    let err = store.migrate().await.unwrap_err();
    let described = client.describe_table().table_name(&table).send().await;
    let _ = client.delete_table().table_name(&table).send().await;

    assert!(matches!(err, StoreError::Open(_)), "{err:?}");
    assert!(err.to_string().contains("not MyloWare's table"), "{err}");
    let description = described.expect("still there").table.unwrap();
    assert!(
        description.global_secondary_indexes().is_empty(),
        "migrate added nothing to it"
    );
}

/// Runs written before the run indexes were sharded carry one partition key
/// (`RUNS`, `RUNS#<status>`) until they change: listing and pruning still
/// find them there.
#[tokio::test]
async fn runs_indexed_before_sharding_are_still_listed_and_pruned() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use myloware::domain::RunStatus;
    use myloware::store::{RunFilter, Transition};
    let Some(emulator) = myloware_tests::aws::emulator().await else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&emulator.sdk);
    let table = format!("mwt-legacy-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoDbStore::new(&emulator.sdk, table.as_str());
    store.migrate().await.expect("create the table");
    let old = myloware_tests::running_run(&store, "aismr").await.run_id;
    store
        .transition_run(Transition::new(
            old,
            RunStatus::Running,
            RunStatus::Published,
        ))
        .await
        .unwrap();
    let new = myloware_tests::running_run(&store, "aismr").await.run_id;
    client
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("RUN#{old}")))
        .key("sk", AttributeValue::S("RUN".into()))
        .update_expression("SET gsi1pk = :all, gsi2pk = :status")
        .expression_attribute_values(":all", AttributeValue::S("RUNS".into()))
        .expression_attribute_values(":status", AttributeValue::S("RUNS#published".into()))
        .send()
        .await
        .expect("index the run as before sharding");

    let listed = store.list_runs(&RunFilter::default()).await;
    let published = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Published),
            ..RunFilter::default()
        })
        .await;
    let pruned = store
        .prune(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await;
    let gone = store.get_run(old).await;
    let _ = client.delete_table().table_name(&table).send().await;

    let ids: Vec<_> = listed.unwrap().runs.iter().map(|r| r.run_id).collect();
    assert_eq!(ids, [new, old], "newest first, across partitions");
    let ids: Vec<_> = published.unwrap().runs.iter().map(|r| r.run_id).collect();
    assert_eq!(ids, [old]);
    assert_eq!(pruned.unwrap().runs, 1);
    assert_eq!(gone.unwrap(), None);
}

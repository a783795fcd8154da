//! The DynamoDB table itself: `migrate` creates it with the store's schema
//! and refuses, without touching it, a table of the same name that is not
//! the store's.
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use myloware::store::{DynamoDbStore, Store, StoreError};

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

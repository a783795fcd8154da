//! The table's schema, and `migrate`: create the table when it is absent and
//! wait until it is ACTIVE; when it is present, check its keys and indexes
//! and change nothing. `template.yaml` declares the same table.
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::items::{GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, PK, SK};
use super::tx::{aws_error, build_error};
use crate::store::StoreError;

/// The TTL attribute (epoch seconds) DynamoDB expires items by.
pub(super) const TTL_ATTRIBUTE: &str = "expires_at";

/// How long `migrate` waits for a new table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// The global secondary indexes: name, partition key, sort key.
const INDEXES: [(&str, &str, &str); 2] = [(GSI1, GSI1PK, GSI1SK), (GSI2, GSI2PK, GSI2SK)];

/// Creates `table` with the store's schema if it does not exist, then waits
/// until it (and its indexes) are ACTIVE. An existing table is checked, never
/// changed.
pub(super) async fn ensure(client: &Client, table: &str) -> Result<(), StoreError> {
    match describe(client, table).await? {
        Some(existing) => check_schema(table, &existing)?,
        None => create(client, table).await?,
    }
    wait_active(client, table).await
}

async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>, StoreError> {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DescribeTableError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error("DescribeTable", e)),
    }
}

fn key(attribute: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(attribute)
        .key_type(key_type)
        .build()
        .map_err(build_error)
}

async fn create(client: &Client, table: &str) -> Result<(), StoreError> {
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?);
    for attribute in [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK] {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)?,
        );
    }
    for (name, pk, sk) in INDEXES {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build_error)?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        // Created meanwhile by another process: wait for it like ours.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(aws_error("CreateTable", e)),
    }
    wait_active(client, table).await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| aws_error("UpdateTimeToLive", e))?;
    tracing::info!(table, "created the DynamoDB table");
    Ok(())
}

async fn wait_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let description = describe(client, table)
            .await?
            .ok_or_else(|| StoreError::Open(format!("DynamoDB table {table} disappeared")))?;
        let indexes_active = description
            .global_secondary_indexes()
            .iter()
            .all(|i| i.index_status() == Some(&IndexStatus::Active));
        if description.table_status() == Some(&TableStatus::Active) && indexes_active {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(StoreError::Open(format!(
                "DynamoDB table {table} is not ACTIVE after {}s (status {:?})",
                ACTIVE_TIMEOUT.as_secs(),
                description.table_status()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The key schema as `(attribute, HASH|RANGE)` pairs.
fn keys(schema: &[KeySchemaElement]) -> Vec<(String, String)> {
    schema
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect()
}

fn expected_keys(pk: &str, sk: &str) -> Vec<(String, String)> {
    vec![(pk.into(), "HASH".into()), (sk.into(), "RANGE".into())]
}

fn check_schema(table: &str, description: &TableDescription) -> Result<(), StoreError> {
    let mismatch = |what: String| {
        StoreError::Open(format!(
            "DynamoDB table {table} exists but is not MyloWare's table: {what}; \
             point DYNAMODB_TABLE at another table or delete this one"
        ))
    };
    let table_keys = keys(description.key_schema());
    if table_keys != expected_keys(PK, SK) {
        return Err(mismatch(format!(
            "its key is {table_keys:?}, expected pk (HASH) and sk (RANGE)"
        )));
    }
    for (name, pk, sk) in INDEXES {
        let index = description
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(name))
            .ok_or_else(|| mismatch(format!("it has no global secondary index {name}")))?;
        let index_keys = keys(index.key_schema());
        if index_keys != expected_keys(pk, sk) {
            return Err(mismatch(format!(
                "index {name} has key {index_keys:?}, expected {pk} (HASH) and {sk} (RANGE)"
            )));
        }
        let projection = index.projection().and_then(|p| p.projection_type());
        if projection != Some(&ProjectionType::All) {
            return Err(mismatch(format!(
                "index {name} projects {projection:?}, expected ALL"
            )));
        }
    }
    Ok(())
}

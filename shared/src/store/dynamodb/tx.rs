//! The transaction toolkit of the DynamoDB adapter: conditional writes
//! applied all together or not at all (`commit`: one conditional `PutItem`,
//! or `TransactWriteItems`, retried while a concurrent transaction cancels
//! it), strongly consistent reads by key, queries of a partition or an
//! index, batched deletes, and the SDK's errors as `StoreError`s.
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, TransactWriteItem, WriteRequest,
};

use super::items::{self, n, s, Item, GSI1, GSI1PK, GSI1SK, GSI2PK, GSI2SK, PK, SK, VERSION};
use super::DynamoDbStore;
use crate::store::StoreError;

/// How many times a transaction cancelled by a concurrent one is retried.
const TRANSACTION_ATTEMPTS: u32 = 10;
/// DynamoDB's limits per `TransactWriteItems` / `BatchWriteItem` call.
pub(super) const TRANSACTION_MAX: usize = 100;
const BATCH_MAX: usize = 25;

const CONDITION_FAILED: &str = "ConditionalCheckFailed";
/// The attribute naming the write that put an item (`commit`).
const WRITE_ID: &str = "write_id";

/// An SDK error as a `StoreError`: the operation and DynamoDB's error code
/// and message, or the chain of causes when no response came (a timeout, a
/// refused connection). Requests are signed, so no credential is in either.
pub(crate) fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = match err.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(&err).to_string(),
    };
    StoreError::Aws { operation, message }
}

pub(crate) fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Aws {
        operation: "building a request",
        message: err.to_string(),
    }
}

/// A condition on one item of a write.
#[derive(Debug, Clone)]
pub(super) struct Cond {
    pub(super) expr: &'static str,
    pub(super) names: HashMap<String, String>,
    pub(super) values: Option<HashMap<String, AttributeValue>>,
}

impl Cond {
    pub(super) fn named(expr: &'static str, names: &[(&str, &str)]) -> Self {
        Self {
            expr,
            names: names
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            values: None,
        }
    }

    /// The item does not exist yet.
    pub(super) fn absent() -> Self {
        Self::named("attribute_not_exists(#pk)", &[("#pk", PK)])
    }

    /// The item exists.
    pub(super) fn exists() -> Self {
        Self::named("attribute_exists(#pk)", &[("#pk", PK)])
    }

    /// The item is still at the version it was read at.
    pub(super) fn version(version: i64) -> Self {
        let mut cond = Self::named("#version = :version", &[("#version", VERSION)]);
        cond.values = Some(HashMap::from([(":version".into(), n(version))]));
        cond
    }
}

/// One write of an all-or-nothing group.
#[derive(Debug, Clone)]
pub(super) enum Write {
    Put(Item, Cond),
    Check(Item, Cond),
    Delete(Item, Cond),
}

/// Whether the write at `index` of a cancelled group failed its condition.
pub(super) fn failed(codes: &[String], index: usize) -> bool {
    codes.get(index).is_some_and(|c| c == CONDITION_FAILED)
}

impl DynamoDbStore {
    pub(super) async fn get(&self, key: (String, String)) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("GetItem", e))?;
        Ok(out.item)
    }

    fn transact_item(&self, write: Write) -> Result<TransactWriteItem, StoreError> {
        // The SDK's three conditional builders share these setters but no
        // trait: the macro writes the condition onto each of them.
        macro_rules! conditional {
            ($builder:expr, $cond:expr) => {{
                let c: Cond = $cond;
                $builder
                    .table_name(&self.table)
                    .condition_expression(c.expr)
                    .set_expression_attribute_names(Some(c.names))
                    .set_expression_attribute_values(c.values)
                    .build()
                    .map_err(build_error)?
            }};
        }
        let item = match write {
            Write::Put(item, c) => TransactWriteItem::builder()
                .put(conditional!(Put::builder().set_item(Some(item)), c)),
            Write::Check(key, c) => TransactWriteItem::builder().condition_check(conditional!(
                ConditionCheck::builder().set_key(Some(key)),
                c
            )),
            Write::Delete(key, c) => TransactWriteItem::builder()
                .delete(conditional!(Delete::builder().set_key(Some(key)), c)),
        };
        Ok(item.build())
    }

    /// Applies `writes` all together or not at all. `Ok(Err(codes))` when a
    /// condition failed: DynamoDB's reason code for each write, in order.
    /// One put is a plain conditional `PutItem`; more is a transaction.
    pub(super) async fn commit(
        &self,
        writes: Vec<Write>,
    ) -> Result<Result<(), Vec<String>>, StoreError> {
        // One id for this group, on each item it puts: what tells this
        // write's items from another writer's that hold the same values.
        let write_id = s(uuid::Uuid::new_v4().simple().to_string());
        let writes: Vec<Write> = writes
            .into_iter()
            .map(|write| match write {
                Write::Put(mut item, c) => {
                    item.insert(WRITE_ID.into(), write_id.clone());
                    Write::Put(item, c)
                }
                other => other,
            })
            .collect();
        let sent = writes.clone();
        match self.try_commit(writes).await? {
            Err(_) if self.already_applied(&sent).await? => Ok(Ok(())),
            outcome => Ok(outcome),
        }
    }

    /// Whether the table already holds every put of `writes` exactly as it
    /// would write it, and none of its deletes: the group was applied by an
    /// earlier try whose answer was lost. The SDK sends a write again after a
    /// lost answer (a timeout, a connection ended, a 5xx), and its second try
    /// then fails the conditions the first one made true. Every put item
    /// carries its group's write id (`WRITE_ID`), so another writer's items
    /// never look the same, even with the same values (two reconcilers
    /// claiming one job with the same lease).
    async fn already_applied(&self, writes: &[Write]) -> Result<bool, StoreError> {
        let key = |item: &Item| -> Option<(String, String)> {
            Some((
                item.get(PK)?.as_s().ok()?.clone(),
                item.get(SK)?.as_s().ok()?.clone(),
            ))
        };
        let mut puts = 0;
        for write in writes {
            match write {
                Write::Put(item, _) => {
                    let Some(k) = key(item) else { return Ok(false) };
                    if self.get(k).await?.as_ref() != Some(item) {
                        return Ok(false);
                    }
                    puts += 1;
                }
                Write::Delete(item, _) => {
                    let Some(k) = key(item) else { return Ok(false) };
                    if self.get(k).await?.is_some() {
                        return Ok(false);
                    }
                }
                Write::Check(..) => {}
            }
        }
        if puts > 0 {
            tracing::info!(
                writes = writes.len(),
                "a write found already applied: an earlier try's answer was lost"
            );
        }
        Ok(puts > 0)
    }

    async fn try_commit(
        &self,
        mut writes: Vec<Write>,
    ) -> Result<Result<(), Vec<String>>, StoreError> {
        if let [Write::Put(..)] = writes.as_slice() {
            let Some(Write::Put(item, c)) = writes.pop() else {
                unreachable!("matched above")
            };
            return match self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(c.expr)
                .set_expression_attribute_names(Some(c.names))
                .set_expression_attribute_values(c.values)
                .send()
                .await
            {
                Ok(_) => Ok(Ok(())),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(Err(vec![CONDITION_FAILED.into()]))
                }
                Err(e) => Err(aws_error("PutItem", e)),
            };
        }
        let items = writes
            .into_iter()
            .map(|w| self.transact_item(w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(Ok(())),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
                err.as_service_error()
            {
                let codes: Vec<String> = cancel
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_owned())
                    .collect();
                if codes.iter().any(|c| c == CONDITION_FAILED) {
                    return Ok(Err(codes));
                }
                let conflict = codes.iter().any(|c| c == "TransactionConflict");
                if conflict && attempt < TRANSACTION_ATTEMPTS {
                    let jitter = rand::random::<u64>() % 20;
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter))
                        .await;
                    continue;
                }
            }
            return Err(aws_error("TransactWriteItems", err));
        }
    }

    /// Every item of a query, in order, up to `max`.
    pub(super) async fn query(
        &self,
        q: Query,
        max: Option<usize>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(q.index.map(str::to_owned))
                .key_condition_expression(&q.key_condition)
                .set_expression_attribute_names(Some(q.names.clone()))
                .set_expression_attribute_values(Some(q.values.clone()))
                .set_filter_expression(q.filter.clone())
                .scan_index_forward(q.forward)
                .set_limit(q.page_limit)
                .consistent_read(q.index.is_none())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error("Query", e))?;
            found.extend(page.items.unwrap_or_default());
            if let Some(max) = max.filter(|m| found.len() >= *m) {
                found.truncate(max);
                return Ok(found);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }

    /// Deletes `keys` in batches, retrying what DynamoDB leaves unprocessed.
    pub(super) async fn delete_all(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_MAX) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(build_error)
                })
                .collect::<Result<_, _>>()?;
            for attempt in 0u64.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| aws_error("BatchWriteItem", e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1).min(20))).await;
            }
        }
        Ok(())
    }

    /// A query of one partition (a run's, a conversation's): the items whose
    /// sort key starts with `prefix` (all of them for `""`), strongly
    /// consistent, in sort-key order.
    pub(super) fn partition(pk: String, prefix: &str) -> Query {
        let mut q = Query {
            index: None,
            key_condition: "#pk = :pk".into(),
            names: HashMap::from([("#pk".into(), PK.into())]),
            values: HashMap::from([(":pk".into(), s(pk))]),
            filter: None,
            forward: true,
            page_limit: None,
        };
        if !prefix.is_empty() {
            q.key_condition.push_str(" AND begins_with(#sk, :prefix)");
            q.names.insert("#sk".into(), SK.into());
            q.values.insert(":prefix".into(), s(prefix));
        }
        q
    }

    /// A query of an index partition, in sort-key order, with sort keys below
    /// `below` when given.
    pub(super) fn index(index: &'static str, pk: String, below: Option<String>) -> Query {
        let (pk_attr, sk_attr) = if index == GSI1 {
            (GSI1PK, GSI1SK)
        } else {
            (GSI2PK, GSI2SK)
        };
        let mut q = Query {
            index: Some(index),
            key_condition: "#ipk = :ipk".into(),
            names: HashMap::from([("#ipk".into(), pk_attr.into())]),
            values: HashMap::from([(":ipk".into(), s(pk))]),
            filter: None,
            forward: true,
            page_limit: None,
        };
        if let Some(below) = below {
            q.key_condition.push_str(" AND #isk < :below");
            q.names.insert("#isk".into(), sk_attr.into());
            q.values.insert(":below".into(), s(below));
        }
        q
    }
}

/// What `DynamoDbStore::query` reads.
#[derive(Debug, Clone)]
pub(super) struct Query {
    pub(super) index: Option<&'static str>,
    pub(super) key_condition: String,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
    pub(super) filter: Option<String>,
    pub(super) forward: bool,
    pub(super) page_limit: Option<i32>,
}

//! Produce (key 0), versions 0-11.
//!
//! Each partition is answered on its own: a bad partition never fails the others. The connection
//! thread validates each partition's records and sends the valid ones to the `log-writer` thread
//! in one append command. The handler returns a deferred outcome that waits for the offsets the
//! writer assigns, so that the connection can submit the client's next produce meanwhile. The
//! answer is sent only after the bytes are in the log files. With acks=0 nothing is sent back.
//!
//! The checks follow Kafka's request path, in its order, so that hostile records get Kafka's error
//! codes:
//! 1. `KafkaApis.handleProduceRequest` looks at the first batch of every partition: one whose length
//!    or magic is impossible fails the whole request with CORRUPT_MESSAGE, and a transactional
//!    batch without a transactional id fails it with TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
//! 2. Per partition: unknown topic or partition (3); then `ProduceRequest.validateRecords` (exactly
//!    one batch, of magic 2, no zstd before v7), where bytes too few to form a further batch are
//!    ignored (and not appended), as Kafka's batch iterator ignores them. Kafka skips this for
//!    v0-2, which no current client sends; sprat checks them alike.
//! 3. The acks value (21), then for a transactional batch the transaction coordinator's
//!    verification of the partition (`TransactionCoordinator::verify_produce`, whose error the
//!    partition is answered with).
//! 4. The log's checks (`UnifiedLog.analyzeAndValidateRecords`, `LogValidator.validateBatch`): base
//!    offset 0, `max.message.bytes` (10), CRC-32C (2), a known compression codec, a record count
//!    that matches the offsets, no control batch, a sequence for every producer id, and for
//!    every batch records that parse exactly to the end of its records section (87), with a key
//!    when the topic is compacted. A compressed batch is decompressed for that, as Kafka's
//!    `LogValidator` does (on the connection's thread, up to 64 MiB of records); data its codec
//!    cannot decompress is CORRUPT_MESSAGE (2). The batch is stored as it came.
//! 5. The writer's producer-state checks: sequences (45), an epoch older than the producer's
//!    INVALID_PRODUCER_EPOCH (47), and a non-transactional batch inside the producer's open
//!    transaction INVALID_TXN_STATE (48).
//!
//! A stale epoch is INVALID_PRODUCER_EPOCH in every produce version: Kafka (since 2.7,
//! KAFKA-10687) answers a PRODUCER_FENCED from anywhere as INVALID_PRODUCER_EPOCH in produce
//! responses, which older producers know and newer ones treat as abortable.
//!
//! A request that names a partition twice is answered once for it, with the last entry's
//! records, as Kafka's maps of partitions keep one entry per partition.

use super::{Deferred, HandlerResult, Outcome, now_ms, respond};
use crate::broker::{BrokerContext, cleanup_policy};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::produce::*;
use crate::protocol::wire::{DecodeResult, Decoder};
use crate::quota;
use crate::security::acl::{AclOperation, ResourceType, authorized};
use crate::storage::log::TopicPartition;
use crate::storage::record_batch::{
    ATTRIBUTES_OFFSET, Batches, CONTROL_FLAG_MASK, HEADER_SIZE, LENGTH_OFFSET, LOG_OVERHEAD,
    MAGIC_OFFSET, MAGIC_V2, PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET, TRANSACTIONAL_FLAG_MASK,
    set_log_append_time, set_partition_leader_epoch,
};
use crate::txn::TransactionCoordinator;
use crate::writer::{PartitionAppend, PartitionAppendResult, WriterCommand};
use byteorder::{BigEndian, ByteOrder};
use crossbeam_channel::Receiver;
use log::{debug, error};
use std::collections::HashSet;

/// The smallest length a batch may declare (Kafka's `LegacyRecord.RECORD_OVERHEAD_V0`); anything
/// shorter is corrupt whatever its magic.
const MIN_DECLARED_BATCH_LENGTH: i32 = 14;

/// The compression codec id of zstd, which produce requests may use from v7 only.
const ZSTD_CODEC: i16 = 4;

/// The highest compression codec id Kafka knows (zstd).
const MAX_KNOWN_CODEC: i16 = 4;

/// The first produce version allowed to carry zstd batches.
const FIRST_ZSTD_VERSION: i16 = 7;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ProduceRequest::decode(d, version)?;
    let acks = request.acks;
    let mut parts = last_entry_per_partition(request.topic_data);
    let request_bytes: usize = parts
        .iter()
        .map(|p| p.records.as_ref().map_or(0, Vec::len))
        .sum();
    let txn_denied = request
        .transactional_id
        .as_deref()
        .is_some_and(|id| !authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, id));
    let submitted = match request_refusal(&parts, request.transactional_id.is_some()) {
        Some(code) => Submitted::Refused(refuse_request(&parts, code)),
        None if txn_denied => Submitted::Refused(refuse_request(
            &parts,
            ErrorCode::TransactionalIdAuthorizationFailed,
        )),
        None => match submit(
            ctx,
            &mut parts,
            acks,
            version,
            request.transactional_id.as_deref(),
        ) {
            Ok((pending, appends)) => Submitted::Appending {
                parts,
                pending,
                appends,
            },
            Err(code) => Submitted::Refused(refuse_request(&parts, code)),
        },
    };
    let header = header.clone();
    Ok(Outcome::Deferred(Deferred::new(move |ctx| {
        finish(ctx, &header, acks, request_bytes, submitted)
    })))
}

/// Waits for the writer and answers: the response, or with acks=0 nothing (or a close).
fn finish(
    ctx: &BrokerContext,
    header: &RequestHeader,
    acks: i16,
    request_bytes: usize,
    submitted: Submitted,
) -> Outcome {
    let version = header.api_version;
    let mut response = submitted.response(ctx);
    let throttle = ctx.quotas.record(
        &ctx.metadata.read(),
        quota::PRODUCER_BYTE_RATE,
        quota::quota_user(&crate::security::current_principal()),
        header.client_id.as_deref().unwrap_or_default(),
        request_bytes,
        std::time::Instant::now(),
    );
    response.throttle_time_ms = quota::throttle_ms(throttle);
    // Since KIP-219 (v6) the client waits out the throttle itself and the broker mutes the
    // connection after answering (acks=0 too); before it, the answer itself is delayed.
    quota::throttle(throttle, version >= 6 || acks == 0);
    if acks != 0 {
        return respond(header, |e| response.encode(e, version));
    }
    // With acks=0 the client reads no answer; as Kafka does, a failure closes the connection so
    // that the producer notices and refreshes its metadata.
    let failed = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.error_code != ErrorCode::None.code());
    match failed {
        Some(p) => Outcome::Close(format!(
            "acks=0 produce failed with error {} on partition {}",
            p.error_code, p.index
        )),
        None => Outcome::NoResponse,
    }
}

/// One (topic, partition) of the request, with the records of its last entry.
struct PartitionEntry {
    topic: String,
    index: i32,
    records: Option<Vec<u8>>,
}

/// Flattens the request into one entry per partition, in request order, keeping for a partition
/// named more than once only its last entry (at that entry's place).
fn last_entry_per_partition(topics: Vec<TopicProduceData>) -> Vec<PartitionEntry> {
    let mut entries: Vec<PartitionEntry> = topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name;
            t.partition_data.into_iter().map(move |p| PartitionEntry {
                topic: topic.clone(),
                index: p.index,
                records: p.records,
            })
        })
        .collect();
    // From the end, the first entry seen of each partition is its last.
    let mut seen = HashSet::with_capacity(entries.len());
    entries.reverse();
    entries.retain(|e| seen.insert((e.topic.clone(), e.index)));
    entries.reverse();
    entries
}

/// Kafka's look at every partition's first batch before anything else
/// (`RequestUtils.hasTransactionalRecords`): an impossible batch header fails the whole request,
/// and so does a transactional batch in a request without a transactional id.
fn request_refusal(parts: &[PartitionEntry], has_transactional_id: bool) -> Option<ErrorCode> {
    for part in parts {
        let records = part.records.as_deref().unwrap_or_default();
        match next_batch(records) {
            Err(()) => return Some(ErrorCode::CorruptMessage),
            Ok(Some(batch)) if is_transactional(batch) => {
                return (!has_transactional_id)
                    .then_some(ErrorCode::TransactionalIdAuthorizationFailed);
            }
            Ok(_) => {}
        }
    }
    None
}

/// The answer to a request refused as a whole (Kafka's `ProduceRequest.getErrorResponse`).
fn refuse_request(parts: &[PartitionEntry], code: ErrorCode) -> ProduceResponse {
    by_topic(
        parts
            .iter()
            .map(|part| (part.topic.as_str(), partition_refused(part.index, code))),
    )
}

/// A response from partition answers in request order: consecutive answers of one topic share
/// its entry, as Kafka's do.
fn by_topic<'a>(
    answers: impl Iterator<Item = (&'a str, PartitionProduceResponse)>,
) -> ProduceResponse {
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    for (topic, answer) in answers {
        match responses.last_mut() {
            Some(t) if t.name == topic => t.partition_responses.push(answer),
            _ => responses.push(TopicProduceResponse {
                name: topic.to_string(),
                partition_responses: vec![answer],
            }),
        }
    }
    ProduceResponse {
        responses,
        ..ProduceResponse::default()
    }
}

/// Where one partition's answer comes from: an error found while validating, or the writer.
enum Pending {
    Failed(ErrorCode),
    /// Index into the appends, and the LogAppendTime stamped on the batch, if the topic uses it.
    Appending(usize, Option<i64>),
}

/// A produce request after validation.
enum Submitted {
    /// Refused as a whole, before anything was appended.
    Refused(ProduceResponse),
    /// Each partition (its records taken), where its answer comes from, and the appends that
    /// went to the writer.
    Appending {
        parts: Vec<PartitionEntry>,
        pending: Vec<Pending>,
        appends: Appending,
    },
}

impl Submitted {
    /// Waits for the writer's results and builds the response.
    fn response(self, ctx: &BrokerContext) -> ProduceResponse {
        let (parts, pending, appends) = match self {
            Submitted::Refused(response) => return response,
            Submitted::Appending {
                parts,
                pending,
                appends,
            } => (parts, pending, appends),
        };
        let results = appends.wait();
        by_topic(parts.iter().zip(pending).map(|(part, pending)| {
            let (result, append_time) = match pending {
                Pending::Failed(code) => (Err(code), None),
                Pending::Appending(i, t) => (results[i], t),
            };
            let answer = partition_response(ctx, &part.topic, part.index, result, append_time);
            (part.topic.as_str(), answer)
        }))
    }
}

/// Validates the partitions and sends the valid appends to the writer, taking their records;
/// returns where each partition's answer comes from. `Err` is an error that fails the whole
/// request (nothing was sent then).
fn submit(
    ctx: &BrokerContext,
    parts: &mut [PartitionEntry],
    acks: i16,
    version: i16,
    transactional_id: Option<&str>,
) -> Result<(Vec<Pending>, Appending), ErrorCode> {
    let acks_valid = matches!(acks, -1..=1);
    let live = ctx.live_config();
    let mut appends = Vec::new();
    let mut pending = Vec::with_capacity(parts.len());
    for part in parts.iter_mut() {
        if !authorized(ctx, AclOperation::Write, ResourceType::Topic, &part.topic) {
            pending.push(Pending::Failed(ErrorCode::TopicAuthorizationFailed));
            continue;
        }
        let Some(metadata) = ctx
            .topic(&part.topic)
            .filter(|t| t.partitions.contains_key(&part.index))
        else {
            pending.push(Pending::Failed(ErrorCode::UnknownTopicOrPartition));
            continue;
        };
        let records = part.records.as_deref().unwrap_or_default();
        let batch = match check_request_records(records, version) {
            Ok(batch) => batch,
            Err(Refusal::Partition(code)) => {
                pending.push(Pending::Failed(code));
                continue;
            }
            Err(Refusal::Request(code)) => return Err(code),
        };
        if !acks_valid {
            pending.push(Pending::Failed(ErrorCode::InvalidRequiredAcks));
            continue;
        }
        let tp = TopicPartition::new(part.topic.clone(), part.index);
        if let Err(code) = verify_transaction(&ctx.transactions, transactional_id, &tp, batch) {
            pending.push(Pending::Failed(code));
            continue;
        }
        let config = |key: &str| metadata.configs.get(key).map(String::as_str);
        let max_message_bytes = config("max.message.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(live.message_max_bytes);
        let compacted = cleanup_policy(&metadata.configs, &live).compact;
        if let Err(code) = check_batch(batch, max_message_bytes, compacted) {
            pending.push(Pending::Failed(code));
            continue;
        }
        let batch_len = batch.len();
        let log_append_time = config("message.timestamp.type")
            .or_else(|| live.get("log.message.timestamp.type"))
            .map(str::trim)
            == Some("LogAppendTime");
        // As leader, Kafka stamps its partition leader epoch on every batch it appends; the CRC
        // does not cover the field.
        let leader_epoch = metadata
            .partitions
            .get(&part.index)
            .map_or(0, |m| m.leader_epoch);
        // The batch is the start of the records; what follows it is too short to be another
        // batch and is not appended.
        let mut batch = part.records.take().unwrap_or_default();
        batch.truncate(batch_len);
        set_partition_leader_epoch(&mut batch, leader_epoch);
        let append_time = log_append_time.then(now_ms);
        if let Some(t) = append_time {
            set_log_append_time(&mut batch, t);
        }
        appends.push(PartitionAppend {
            topic_partition: tp,
            batches: batch,
        });
        pending.push(Pending::Appending(appends.len() - 1, append_time));
    }
    Ok((pending, Appending::send(ctx, appends)))
}

/// Kafka's partition verification for a transactional batch (KIP-890 part 1, done by
/// `ReplicaManager` before the log's checks): the transaction coordinator must know the
/// partition as part of the id's ongoing transaction with this producer id and epoch. A
/// non-transactional batch needs nothing. (A transactional batch without a transactional id
/// never gets here: [`request_refusal`] refused the request.)
fn verify_transaction(
    coordinator: &TransactionCoordinator,
    transactional_id: Option<&str>,
    tp: &TopicPartition,
    batch: &[u8],
) -> Result<(), ErrorCode> {
    if !is_transactional(batch) || batch.len() < HEADER_SIZE {
        return Ok(());
    }
    let Some(transactional_id) = transactional_id else {
        return Err(ErrorCode::TransactionalIdAuthorizationFailed);
    };
    let producer_id = BigEndian::read_i64(&batch[PRODUCER_ID_OFFSET..]);
    let producer_epoch = BigEndian::read_i16(&batch[PRODUCER_EPOCH_OFFSET..]);
    coordinator.verify_produce(transactional_id, producer_id, producer_epoch, tp)
}

/// Appends sent to the writer, whose results are yet to come.
enum Appending {
    Nothing,
    Sent {
        count: usize,
        reply: Receiver<Vec<PartitionAppendResult>>,
    },
    /// The writer is gone (the broker is stopping).
    Failed(usize),
}

impl Appending {
    fn send(ctx: &BrokerContext, appends: Vec<PartitionAppend>) -> Appending {
        if appends.is_empty() {
            return Appending::Nothing;
        }
        let count = appends.len();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let command = WriterCommand::Append {
            partitions: appends,
            reply: tx,
        };
        match ctx.writer.send(command) {
            Ok(()) => Appending::Sent { count, reply: rx },
            Err(_) => Appending::Failed(count),
        }
    }

    /// Waits for the writer; one result per append, in order.
    fn wait(self) -> Vec<PartitionAppendResult> {
        let count = match self {
            Appending::Nothing => return Vec::new(),
            Appending::Sent { count, reply } => match reply.recv() {
                Ok(results) => return results,
                Err(_) => count,
            },
            Appending::Failed(count) => count,
        };
        error!("the log writer is gone; failing {count} appends");
        vec![Err(ErrorCode::KafkaStorageError); count]
    }
}

fn partition_response(
    ctx: &BrokerContext,
    topic: &str,
    index: i32,
    result: PartitionAppendResult,
    log_append_time: Option<i64>,
) -> PartitionProduceResponse {
    match result {
        Ok(info) => {
            let log_start_offset = ctx
                .partition(&TopicPartition::new(topic, index))
                .map_or(0, |p| p.log_start_offset());
            PartitionProduceResponse {
                index,
                error_code: ErrorCode::None.code(),
                base_offset: info.first_offset,
                log_append_time_ms: log_append_time.unwrap_or(-1),
                log_start_offset,
                ..PartitionProduceResponse::default()
            }
        }
        Err(code) => partition_refused(index, produce_error(code)),
    }
}

/// The code a produce response carries for an error: PRODUCER_FENCED (from the coordinator's
/// verification) becomes INVALID_PRODUCER_EPOCH, which every producer version knows and which
/// lets the client abort and retry (Kafka's `KafkaApis.handleProduceRequest`, KAFKA-10687).
fn produce_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
        code => code,
    }
}

/// A partition answered with an error: offsets and times -1.
fn partition_refused(index: i32, code: ErrorCode) -> PartitionProduceResponse {
    PartitionProduceResponse {
        index,
        error_code: code.code(),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
        ..PartitionProduceResponse::default()
    }
}

/// Why a partition's records are refused: an error for that partition, or one that fails the
/// whole request (Kafka lets an unexpected exception escape the partition loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Partition(ErrorCode),
    Request(ErrorCode),
}

/// The first batch of `records` as Kafka's batch iterator (`ByteBufferLogInputStream.nextBatch`)
/// finds it. `Ok(None)` when the bytes are too few for a whole batch: Kafka stops there without
/// an error. `Err` when the declared length or the magic is impossible (CORRUPT_MESSAGE).
fn next_batch(records: &[u8]) -> Result<Option<&[u8]>, ()> {
    if records.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let length = BigEndian::read_i32(&records[LENGTH_OFFSET..]);
    if length < MIN_DECLARED_BATCH_LENGTH {
        return Err(());
    }
    if records.len() <= MAGIC_OFFSET {
        return Ok(None);
    }
    let magic = records[MAGIC_OFFSET] as i8;
    if !(0..=MAGIC_V2).contains(&magic) {
        return Err(());
    }
    let size = LOG_OVERHEAD + length as usize;
    Ok(records.get(..size))
}

/// A batch's attributes (magic 2 only; older formats have none at this place).
fn attributes(batch: &[u8]) -> Option<i16> {
    let magic = batch[MAGIC_OFFSET] as i8;
    let bytes = batch.get(ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2)?;
    (magic == MAGIC_V2).then(|| BigEndian::read_i16(bytes))
}

fn is_transactional(batch: &[u8]) -> bool {
    attributes(batch).is_some_and(|a| a & TRANSACTIONAL_FLAG_MASK != 0)
}

/// The checks Kafka makes on a partition's records before looking at acks
/// (`ProduceRequest.validateRecords`, from v3): exactly one batch, of magic 2, and zstd only from
/// v7. Returns the batch, without any bytes after it too few to form another one.
pub fn check_request_records(records: &[u8], version: i16) -> Result<&[u8], Refusal> {
    let corrupt = Refusal::Partition(ErrorCode::CorruptMessage);
    let invalid = Refusal::Partition(ErrorCode::InvalidRecord);
    let batch = match next_batch(records) {
        Ok(Some(batch)) => batch,
        Ok(None) => return Err(invalid),
        Err(()) => return Err(corrupt),
    };
    if batch[MAGIC_OFFSET] as i8 != MAGIC_V2 {
        return Err(invalid);
    }
    if version < FIRST_ZSTD_VERSION {
        // Kafka reads the codec here only before v7; an unknown one throws past the partition.
        match attributes(batch).map(|a| a & 0x07) {
            Some(ZSTD_CODEC) => {
                return Err(Refusal::Partition(ErrorCode::UnsupportedCompressionType));
            }
            Some(codec) if codec > MAX_KNOWN_CODEC => {
                return Err(Refusal::Request(ErrorCode::UnknownServerError));
            }
            _ => {}
        }
    }
    match next_batch(&records[batch.len()..]) {
        Ok(None) => Ok(batch),
        Ok(Some(_)) => Err(invalid),
        Err(()) => Err(corrupt),
    }
    .inspect_err(|_| debug!("produce records refused at version {version}"))
}

/// The checks Kafka's log makes on the one batch, in its order: a client base offset of 0, size
/// within `max.message.bytes`, CRC-32C, a known compression codec, then `LogValidator`'s: a
/// record count matching the offset range, no control batch, a sequence for a producer id, and
/// records (decompressed first when the batch is compressed) that parse to exactly their end,
/// with a key when the topic is compacted.
pub fn check_batch(
    batch: &[u8],
    max_message_bytes: i32,
    key_required: bool,
) -> Result<(), ErrorCode> {
    if batch.len() < LOG_OVERHEAD || BigEndian::read_i64(batch) != 0 {
        return Err(ErrorCode::InvalidRecord);
    }
    if batch.len() > max_message_bytes.max(0) as usize {
        return Err(ErrorCode::MessageTooLarge);
    }
    let view = match Batches::new(batch).next() {
        Some(Ok(view)) if batch.len() >= HEADER_SIZE => view,
        _ => return Err(ErrorCode::CorruptMessage),
    };
    if let Err(e) = view.validate() {
        debug!("produce batch refused: {e}");
        return Err(ErrorCode::CorruptMessage);
    }
    let codec = view.compression_codec();
    if codec > MAX_KNOWN_CODEC {
        return Err(ErrorCode::UnknownServerError);
    }
    let count_from_offsets = i64::from(view.last_offset_delta()) + 1;
    let count = view.records_count();
    if count_from_offsets <= 0 || count <= 0 || i64::from(count) != count_from_offsets {
        return Err(ErrorCode::InvalidRecord);
    }
    if view.attributes() & CONTROL_FLAG_MASK != 0 {
        return Err(ErrorCode::InvalidRecord);
    }
    if view.producer_id() >= 0 && view.base_sequence() < 0 {
        return Err(ErrorCode::InvalidRecord);
    }
    let records = crate::storage::cleaner::records_section(&view).map_err(|e| {
        debug!("produce batch refused: its records do not decompress: {e}");
        ErrorCode::CorruptMessage
    })?;
    if !records_parse(&records, count, key_required) {
        return Err(ErrorCode::InvalidRecord);
    }
    Ok(())
}

/// Whether `count` records parse as Kafka's `DefaultRecord.readFrom` reads them and end exactly
/// where the batch does (Kafka: "Incorrect declared batch size, records still remaining").
fn records_parse(records: &[u8], count: i32, key_required: bool) -> bool {
    let mut d = Decoder::new(records);
    for _ in 0..count {
        if !record_parses(&mut d, key_required).unwrap_or(false) {
            return false;
        }
    }
    d.remaining() == 0
}

/// Reads one record; `Ok(false)` or an error when it is malformed.
fn record_parses(d: &mut Decoder<'_>, key_required: bool) -> DecodeResult<bool> {
    let body_bytes = d.varint()?;
    if i64::from(body_bytes) > d.remaining() as i64 {
        return Ok(false);
    }
    let start = d.position();
    let _attributes = d.i8()?;
    let _timestamp_delta = d.varlong()?;
    let _offset_delta = d.varint()?;
    let key = d.varint()?;
    if key >= 0 {
        d.take(key as usize)?;
    } else if key_required {
        return Ok(false);
    }
    let value = d.varint()?;
    if value >= 0 {
        d.take(value as usize)?;
    }
    let headers = d.varint()?;
    if headers < 0 || headers as usize > d.remaining() {
        return Ok(false);
    }
    for _ in 0..headers {
        let key = d.varint()?;
        if key < 0 {
            return Ok(false);
        }
        d.take(key as usize)?;
        let value = d.varint()?;
        if value >= 0 {
            d.take(value as usize)?;
        }
    }
    Ok(i64::try_from(d.position() - start).ok() == Some(i64::from(body_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record_batch::{BatchHeader, Record, build_batch};

    fn batch(attributes: i16) -> Vec<u8> {
        let header = BatchHeader {
            attributes,
            producer_id: 4,
            producer_epoch: 2,
            base_sequence: 0,
            ..BatchHeader::default()
        };
        let record = Record {
            value: Some(b"v".to_vec()),
            ..Record::default()
        };
        build_batch(&header, &[record])
    }

    #[test]
    fn transactional_batches_are_verified_by_the_coordinator() {
        let coordinator = TransactionCoordinator::default();
        let tp = TopicPartition::new("t", 1);
        let transactional = batch(TRANSACTIONAL_FLAG_MASK);
        // Whatever the coordinator answers for this producer is the partition's answer.
        let expected = coordinator.verify_produce("txn", 4, 2, &tp);
        assert_eq!(
            verify_transaction(&coordinator, Some("txn"), &tp, &transactional),
            expected
        );
        assert_eq!(
            verify_transaction(&coordinator, None, &tp, &transactional),
            Err(ErrorCode::TransactionalIdAuthorizationFailed)
        );
        assert_eq!(
            produce_error(ErrorCode::ProducerFenced),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            produce_error(ErrorCode::InvalidTxnState),
            ErrorCode::InvalidTxnState
        );
        // Idempotent and plain batches are not the coordinator's business.
        assert_eq!(
            verify_transaction(&coordinator, Some("txn"), &tp, &batch(0)),
            Ok(())
        );
        assert_eq!(
            verify_transaction(&coordinator, None, &tp, &batch(0)),
            Ok(())
        );
    }

    #[test]
    fn transactional_batches_pass_request_checks_only_with_a_transactional_id() {
        let part = |records: Vec<u8>| PartitionEntry {
            topic: "t".into(),
            index: 0,
            records: Some(records),
        };
        let parts = [part(batch(0)), part(batch(TRANSACTIONAL_FLAG_MASK))];
        assert_eq!(request_refusal(&parts, true), None);
        assert_eq!(
            request_refusal(&parts, false),
            Some(ErrorCode::TransactionalIdAuthorizationFailed)
        );
        let transactional = batch(TRANSACTIONAL_FLAG_MASK);
        assert_eq!(
            check_request_records(&transactional, 11),
            Ok(&transactional[..])
        );
        assert_eq!(check_batch(&transactional, 1 << 20, false), Ok(()));
    }

    #[test]
    fn compressed_records_are_decompressed_and_checked() {
        use crate::storage::compression::{Codec, compressed_batch, with_records_section};
        let keyless = batch(0);
        let keyed = build_batch(
            &BatchHeader::default(),
            &[Record {
                key: Some(b"k".to_vec()),
                value: Some(b"v".to_vec()),
                ..Record::default()
            }],
        );
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let good = compressed_batch(&keyless, codec);
            assert_eq!(check_batch(&good, 1 << 20, false), Ok(()), "{codec:?}");
            // A compacted topic needs keys inside compressed batches too.
            assert_eq!(
                check_batch(&good, 1 << 20, true),
                Err(ErrorCode::InvalidRecord),
                "{codec:?}"
            );
            let keyed = compressed_batch(&keyed, codec);
            assert_eq!(check_batch(&keyed, 1 << 20, true), Ok(()), "{codec:?}");
            // Bytes the codec cannot read, under a valid CRC.
            let garbage = with_records_section(&keyless, codec, &[0xde, 0xad, 0xbe, 0xef, 1, 2]);
            assert_eq!(
                check_batch(&garbage, 1 << 20, false),
                Err(ErrorCode::CorruptMessage),
                "{codec:?}"
            );
            // Records that decompress but do not parse to the end.
            let mut section = keyless[crate::storage::record_batch::HEADER_SIZE..].to_vec();
            section.push(0);
            let compressed = crate::storage::compression::compress(codec, &section).unwrap();
            let trailing = with_records_section(&keyless, codec, &compressed);
            assert_eq!(
                check_batch(&trailing, 1 << 20, false),
                Err(ErrorCode::InvalidRecord),
                "{codec:?}"
            );
        }
    }
}

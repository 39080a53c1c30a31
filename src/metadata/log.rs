//! Reading and writing the `__cluster_metadata-0` log.
//!
//! Each record's value is one framed metadata record; keys are null. sprat replays the whole log at
//! start-up (it is small: a few records per topic) and appends one batch per topic change.

use super::{MetadataImage, MetadataRecord};
use crate::storage::log::{Partition, TopicPartition};
use crate::storage::record_batch::{self, BatchHeader, Batches, Record};
use log::{debug, warn};
use std::io;

/// The metadata log's topic-partition.
pub fn metadata_topic_partition() -> TopicPartition {
    TopicPartition::new("__cluster_metadata", 0)
}

/// Replays every record of the metadata log into a fresh image.
pub fn replay(log: &Partition) -> io::Result<MetadataImage> {
    let mut image = MetadataImage::default();
    let mut offset = log.log_start_offset();
    let mut applied = 0usize;
    while let Ok(read) = log.read(offset, 16 << 20, true)? {
        if read.records.is_empty() {
            break;
        }
        for batch in Batches::new(&read.records) {
            let Ok(batch) = batch else { break };
            offset = batch.last_offset() + 1;
            if batch.is_control() {
                continue;
            }
            if batch.compression_codec() != 0 {
                warn!(
                    "metadata batch at offset {} is compressed; skipping it",
                    batch.base_offset()
                );
                continue;
            }
            let records = match record_batch::decode_records(&batch) {
                Ok(r) => r,
                Err(e) => {
                    warn!(
                        "metadata batch at offset {} is undecodable ({e}); skipping it",
                        batch.base_offset()
                    );
                    continue;
                }
            };
            for record in records {
                let Some(value) = record.value else { continue };
                match MetadataRecord::decode(&value) {
                    Ok(r) => {
                        image.apply(&r);
                        applied += 1;
                    }
                    Err(e) => warn!(
                        "undecodable metadata record in batch {}: {e}",
                        batch.base_offset()
                    ),
                }
            }
        }
    }
    debug!(
        "replayed {applied} metadata records: {} topics",
        image.topic_count()
    );
    Ok(image)
}

/// Builds one batch holding `records`, ready to append to the metadata log.
pub fn build_metadata_batch(
    records: &[MetadataRecord],
    timestamp_ms: i64,
    leader_epoch: i32,
) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .map(|r| Record {
            value: Some(r.encode()),
            ..Record::default()
        })
        .collect();
    record_batch::build_batch(
        &BatchHeader {
            partition_leader_epoch: leader_epoch,
            base_timestamp: timestamp_ms,
            max_timestamp: timestamp_ms,
            ..BatchHeader::default()
        },
        &records,
    )
}

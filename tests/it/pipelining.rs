//! Pipelined requests on one connection: produces submitted back to back share the writer's
//! group commit but are answered in order, and a request of another API sees every produce sent
//! before it.

use crate::harness::TestBroker;
use crate::storage::{NONE, batch, create_topic, fetch_request, produce_request};
use sprat::protocol::messages::{fetch, produce};
use sprat::protocol::wire::Decoder;
use sprat::storage::record_batch::Batches;

/// Twenty produces (some acks=0, one to an unknown partition) and then a fetch, all written
/// before any response is read: the responses come back in order with consecutive offsets, and
/// the fetch returns every batch produced before it.
#[test]
fn pipelined_produces_are_answered_in_order_and_seen_by_the_next_fetch() {
    let broker = TestBroker::start("pipelining");
    let mut client = broker.connect();
    create_topic(&mut client, "piped", 1, &[]);
    let mut expected = Vec::new();
    let mut next_offset = 0;
    for i in 0..20u8 {
        let (partition, acks) = match i {
            7 => (5, -1),
            3 | 11 => (0, 0),
            _ => (0, if i % 2 == 0 { -1 } else { 1 }),
        };
        let request = produce_request("piped", partition, &batch(2, 50, 1, i), acks);
        let correlation_id = client.send(produce::API_KEY, 9, |e| request.encode(e, 9));
        if partition == 0 {
            if acks != 0 {
                expected.push((correlation_id, NONE, next_offset));
            }
            next_offset += 2;
        } else {
            expected.push((correlation_id, 3, -1));
        }
    }
    let request = fetch_request("piped", 0, 1 << 20);
    let fetch_id = client.send(fetch::API_KEY, 12, |e| request.encode(e, 12));

    for (correlation_id, error, offset) in expected {
        let frame = client.receive();
        let mut d = Decoder::new(&frame);
        assert_eq!(
            d.i32().unwrap(),
            correlation_id,
            "responses in request order"
        );
        d.skip_tagged_fields().unwrap();
        let response = produce::ProduceResponse::decode(&mut d, 9).unwrap();
        let p = &response.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (error, offset));
    }
    let frame = client.receive();
    let mut d = Decoder::new(&frame);
    assert_eq!(d.i32().unwrap(), fetch_id);
    d.skip_tagged_fields().unwrap();
    let response = fetch::FetchResponse::decode(&mut d, 12).unwrap();
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    let bases: Vec<i64> = Batches::new(&records)
        .map(|b| b.unwrap().base_offset())
        .collect();
    assert_eq!(bases, (0..next_offset).step_by(2).collect::<Vec<_>>());
}

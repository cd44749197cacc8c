//! The harness and the consumer-group basics against the real broker, with plain rdkafka:
//! two members of one group split a 3-partition topic, every record arrives exactly once,
//! and the committed offsets reach the end of each partition.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;

const PARTITIONS: i32 = 3;
const RECORDS: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_members_split_partitions_and_receive_each_record_once() {
    let topic = unique("basics");
    let group = unique("basics-group");
    create_topic(&topic, PARTITIONS).await;

    // (member, partition, offset, payload) of every record received.
    type Received = Vec<(usize, i32, i64, Keyed)>;
    let received: Arc<Mutex<Received>> = Arc::default();
    let mut members = Vec::new();
    for member in 0..2 {
        let consumer: StreamConsumer = client_config()
            .set("group.id", &group)
            // The at-least-once idiom: store after processing, auto-commit what is stored
            // (periodically and on revoke).
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "200")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create()
            .expect("consumer");
        consumer.subscribe(&[&topic]).expect("subscribe");
        let consumer = Arc::new(consumer);
        members.push(consumer.clone());
        let received = received.clone();
        tokio::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(message) => {
                        let keyed = parse_payload(message.payload().unwrap_or_default())
                            .expect("test payload");
                        received.lock().unwrap().push((
                            member,
                            message.partition(),
                            message.offset(),
                            keyed,
                        ));
                        consumer
                            .store_offset_from_message(&message)
                            .expect("store offset");
                    }
                    Err(error) => eprintln!("member {member}: {error}"),
                }
            }
        });
    }

    // Both members must own partitions at the same time before the test is meaningful.
    wait_until(
        Duration::from_secs(60),
        "both members own partitions",
        || {
            members.iter().all(|member| {
                member
                    .assignment()
                    .map(|list| list.count() > 0)
                    .unwrap_or(false)
            })
        },
    )
    .await;
    let assignments: Vec<HashSet<i32>> = members
        .iter()
        .map(|member| {
            member
                .assignment()
                .expect("assignment")
                .elements()
                .iter()
                .map(|element| element.partition())
                .collect()
        })
        .collect();
    assert!(
        assignments[0].is_disjoint(&assignments[1]),
        "members share a partition: {assignments:?}"
    );
    assert_eq!(
        assignments[0].len() + assignments[1].len(),
        PARTITIONS as usize
    );
    // Produce only now, so both members take part (30 keys spread over all partitions).
    let produced = produce_keyed(&topic, 30, RECORDS).await;

    wait_until(Duration::from_secs(60), "every record is received", || {
        let received = received.lock().unwrap();
        received
            .iter()
            .map(|(_, partition, offset, _)| (*partition, *offset))
            .collect::<HashSet<_>>()
            .len()
            >= RECORDS
    })
    .await;

    let received = received.lock().unwrap().clone();
    let mut counts: HashMap<&Keyed, usize> = HashMap::new();
    for (_, _, _, keyed) in &received {
        *counts.entry(keyed).or_default() += 1;
    }
    for keyed in &produced {
        assert_eq!(
            counts.get(keyed),
            Some(&1),
            "{keyed:?} not received exactly once"
        );
    }
    assert_eq!(received.len(), RECORDS, "records received more than once");
    let members_used: HashSet<usize> = received.iter().map(|(member, _, _, _)| *member).collect();
    assert_eq!(
        members_used.len(),
        2,
        "both members should have received records"
    );

    let end = end_offsets(&topic, PARTITIONS);
    assert_eq!(end.iter().sum::<i64>(), RECORDS as i64);
    wait_until(
        Duration::from_secs(30),
        "committed offsets reach the end",
        || committed_offsets(&group, &topic, PARTITIONS) == end,
    )
    .await;
}

"""Events: the transactional outbox, the sequencer that numbers it per ledger in commit
order, the read API, and the relay that publishes it to Kafka, RabbitMQ or SQS."""

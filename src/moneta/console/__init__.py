"""The back-office console: a small server-rendered UI over the same services, with
server-side sessions in Redis and secure cookies."""

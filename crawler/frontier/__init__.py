"""The frontier in SQL: which URLs of a crawl are queued, leased, waiting for a retry, done,
failed or skipped, and the hosts they belong to. A thin repository under the policy core:
`leasing` claims due hosts and their ready URLs, `storing` writes a batch of results in one
transaction, `recovery` brings back work that lapsed, `enqueue` dedups new URLs, and
`repository.Frontier` runs each of them as one retried transaction. SQLite and PostgreSQL."""

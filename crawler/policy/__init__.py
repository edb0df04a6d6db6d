"""The crawl's decisions, with no SQL, no I/O and no clock of its own (time is an argument):
whether a host may be asked now, what a fetch result means for its URL and its host, and
which links are followed. The frontier applies these decisions in SQL; tests check them
without a database."""

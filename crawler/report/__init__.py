"""Comparing the frontends: `crawler compare` runs, the named experiments and their verdicts
(computed from stored runs), and the self-contained HTML report."""

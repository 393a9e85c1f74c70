"""The tamper-evident ledger: RFC 9162 Merkle logs over stored rows, signed checkpoints.

``leaf`` defines what a row's leaf hash covers; ``log`` assigns positions and signs
checkpoints on the write path; ``verify`` and ``proof`` check it all afterwards.
See docs/ledger.md.
"""

"""Remote operations on a provisioned Ray cluster over SSH (Fabric): hosts, connections, the app bundle.

Used by the `cluster` deploy target. Fabric and paramiko are imported inside functions so `ops --help`
starts without them.
"""

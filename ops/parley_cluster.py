"""What the ops/ Python scripts share about the cluster in regions/."""
import json
import os
import ssl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = json.load(open(os.path.join(ROOT, "regions", "cluster.json")))


def gate_tls():
    """The TLS context for the gates (docs/OPERATIONS.md, "TLS"): trusting the
    cluster's authority and checking the host; None when the cluster runs in
    plaintext (PARLEY_TLS=off, or `plaintext` in cluster.json)."""
    if os.environ.get("PARLEY_TLS", "on") == "off" or not CLUSTER.get("tls"):
        return None
    folder = CLUSTER["tls"]["certificates"]
    return ssl.create_default_context(cafile=os.path.join(ROOT, "regions", folder, "ca.pem"))

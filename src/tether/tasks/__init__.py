"""Long tasks kept by tether: definitions, batches with verification, drift rules."""

"""The audit trail: every decision and every admin call, durable before it is answered."""

"""What a secret looks like, and blanking it: used wherever text leaves tether (audit
events, logs, errors, approvals, webhooks), so it sits below everything that writes."""

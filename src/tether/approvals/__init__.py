"""Human approvals: deletions and ``@ask`` rules wait for an operator's yes or no."""
